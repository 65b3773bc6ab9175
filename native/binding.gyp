# Build description of the vde-ts native addon (frame engine + socket helpers). The target is in
# vde_native.gypi, shared with the sanitizer build (sanitize/binding.gyp).
# Built by scripts/build.mjs with an explicit --nodedir so nothing is downloaded.
{
  "variables": {"vde_native_dir": ".", "vde_sanitize": 0},
  "includes": ["vde_native.gypi"]
}
