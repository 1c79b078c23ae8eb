{
  "variables": {
    # The AF_XDP port (io: xdp) needs clang (to compile the XDP program) and
    # libxdp/libbpf (headers and libraries) when this is built. Without them
    # only the AF_PACKET addon is built, and io: xdp says so in one line. The
    # program's object file is also left in build/Release/vipr_xdp.bpf.o for
    # bench/lab/cfwd-xdp.c, the C forwarder that runs the same program.
    "vipr_xdp%": "<!(sh -c 'command -v clang >/dev/null 2>&1 && pkg-config --exists libxdp libbpf && echo 1 || echo 0')"
  },
  "targets": [
    {
      "target_name": "vipr_native",
      "sources": ["src/vipr_port.c"],
      "cflags": ["-O2", "-Wall", "-Wextra", "-Wno-unused-parameter", "-std=gnu11"],
      "defines": ["NAPI_VERSION=8"]
    },
    {
      "target_name": "vipr_liveness",
      "sources": ["src/vipr_liveness.c"],
      "cflags": ["-O2", "-Wall", "-Wextra", "-Wno-unused-parameter", "-std=gnu11"],
      "defines": ["NAPI_VERSION=8"]
    }
  ],
  "conditions": [
    ["vipr_xdp==1", {
      "targets": [
        {
          "target_name": "vipr_xdp",
          "sources": ["src/vipr_xdp_port.c"],
          "include_dirs": ["<(INTERMEDIATE_DIR)"],
          "cflags": ["-O2", "-Wall", "-Wextra", "-Wno-unused-parameter", "-std=gnu11"],
          "defines": ["NAPI_VERSION=8"],
          "libraries": ["<!@(pkg-config --libs libxdp libbpf)"],
          "actions": [
            {
              "action_name": "compile_xdp_program",
              "inputs": ["src/vipr_xdp.bpf.c", "src/vipr_xdp_shared.h"],
              "outputs": ["<(PRODUCT_DIR)/vipr_xdp.bpf.o"],
              "action": [
                "clang", "-O2", "-g", "-Wall", "-target", "bpf",
                "-I/usr/include/<!(cc -dumpmachine)",
                "-c", "src/vipr_xdp.bpf.c", "-o", "<(PRODUCT_DIR)/vipr_xdp.bpf.o"
              ]
            },
            {
              "action_name": "embed_xdp_program",
              "inputs": ["<(PRODUCT_DIR)/vipr_xdp.bpf.o", "tools/embed.js"],
              "outputs": ["<(INTERMEDIATE_DIR)/vipr_xdp_object.h"],
              "action": ["node", "tools/embed.js", "<(PRODUCT_DIR)/vipr_xdp.bpf.o", "<(INTERMEDIATE_DIR)/vipr_xdp_object.h", "vipr_xdp_object"]
            }
          ]
        }
      ]
    }]
  ]
}
