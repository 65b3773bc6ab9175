# AddressSanitizer + UndefinedBehaviorSanitizer build of the addon (the same target and sources
# as ../binding.gyp, from ../vde_native.gypi) into native/sanitize/build, so it never clashes with
# native/build. Built and run by scripts/test-sanitized.mjs (part of `npm test`).
{
  "variables": {"vde_native_dir": "..", "vde_sanitize": 1},
  "includes": ["../vde_native.gypi"]
}
