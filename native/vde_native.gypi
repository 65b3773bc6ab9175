# The vde_native addon target (frame engine + socket helpers; links libslirp and OpenSSL's
# libcrypto, for crypt://), shared by the two gyp files that
# build it: binding.gyp (the addon, native/build) and sanitize/binding.gyp (the ASan/UBSan build
# the test suite runs against, native/sanitize/build). Each includer sets vde_native_dir (this
# directory, relative to itself) and vde_sanitize (0 or 1). The source list is every .cc file
# under src/, listed by sources.mjs, so adding a file needs no edit here. The sanitizer build traps
# on undefined behaviour (ud2) instead of calling GCC's libubsan: with libasan and libubsan both in
# one process, libubsan ignores log_path and prints to stderr, where a test that captures a
# child's output would hide it; a trap is reported by ASan (handle_sigill) into its log instead.
{
  "targets": [
    {
      "target_name": "vde_native",
      "sources": ["<!@(node <(vde_native_dir)/sources.mjs)"],
      "include_dirs": ["<!(node -p \"require('node-addon-api').include_dir\")"],
      "cflags": ["<!@(pkg-config --cflags slirp 2>/dev/null || true)", "<!@(pkg-config --cflags libcrypto 2>/dev/null || true)"],
      "libraries": ["<!@(pkg-config --libs slirp 2>/dev/null || echo -lslirp)", "<!@(pkg-config --libs libcrypto 2>/dev/null || echo -lcrypto)"],
      "defines": ["NAPI_VERSION=8", "NODE_ADDON_API_DISABLE_DEPRECATED"],
      "cflags_cc": ["-std=c++17", "-O2", "-fexceptions", "-Wall", "-Wextra", "-Wno-unused-parameter"],
      "cflags_cc!": ["-fno-exceptions"],
      "cflags!": ["-fno-exceptions"],
      "conditions": [
        ["vde_sanitize==1", {
          "defines": ["VDE_SANITIZE=1"],
          "cflags_cc!": ["-O3", "-O2"],
          "cflags_cc": ["-O1", "-g", "-fno-omit-frame-pointer", "-fsanitize=address,undefined", "-fsanitize-undefined-trap-on-error"],
          "ldflags": ["-fsanitize=address"]
        }]
      ]
    }
  ]
}
