'use strict';
// The compiled addon (src/addon.c), built by `npm install` into build/.

const path = require('node:path');

let addon = null;

function native() {
  if (addon) return addon;
  const tried = [];
  for (const dir of ['Release', 'Debug']) {
    const p = path.join(__dirname, '..', 'build', dir, 'sendfiled.node');
    try {
      addon = require(p);
      return addon;
    } catch (e) {
      tried.push(`${p}: ${e.message}`);
    }
  }
  const err = new Error('the sendfiled native addon is not built (run npm install in ' +
                        `${path.join(__dirname, '..')}); tried:\n  ${tried.join('\n  ')}`);
  err.code = 'ERR_SENDFILED_ADDON';
  throw err;
}

module.exports = { native };
