# Build description of the vde-ts native addon (frame engine + socket helpers).
# Built by scripts/build.mjs with an explicit --nodedir so nothing is downloaded.
{
  "targets": [
    {
      "target_name": "vde_native",
      "sources": ["src/napi/addon.cc", "src/napi/engine_wrap.cc", "src/napi/sockets.cc", "src/engine.cc", "src/policy_learning.cc", "src/policy_wire.cc", "src/kinds/dgram.cc", "src/kinds/stream.cc", "src/kinds/tap.cc", "src/kinds/custom.cc", "src/vxlan.cc", "src/slirp.cc", "src/offload.cc"],
      "include_dirs": ["<!(node -p \"require('node-addon-api').include_dir\")"],
      "cflags": ["<!@(pkg-config --cflags slirp 2>/dev/null || true)"],
      "libraries": ["<!@(pkg-config --libs slirp 2>/dev/null || echo -lslirp)"],
      "defines": ["NAPI_VERSION=8", "NODE_ADDON_API_DISABLE_DEPRECATED"],
      "cflags_cc": ["-std=c++17", "-O2", "-fexceptions", "-Wall", "-Wextra", "-Wno-unused-parameter"],
      "cflags_cc!": ["-fno-exceptions"],
      "cflags!": ["-fno-exceptions"]
    }
  ]
}
