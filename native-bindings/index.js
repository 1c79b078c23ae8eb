'use strict';
// Loads the addon node-gyp built at install (`npm ci`, or `bash scripts/setup.sh`).
module.exports = require('./build/Release/vipr_native.node');
