'use strict';
// Loads the AF_XDP port addon (io: xdp). node-gyp builds it beside the
// AF_PACKET one only when clang, libxdp and libbpf were there at build time
// (`bash scripts/setup.sh` installs them); without it this throws and
// src/io/xdp-port.ts says what to install.
module.exports = require('./build/Release/vipr_xdp.node');
