'use strict';

/*
 * The Fastify plugin: reply.sendFile(name[, root][, options]) and, with a
 * root, a route serving that directory (as @fastify/static does), the
 * bodies sent by the daemon.
 *
 *   fastify.register(require('sendfiled/fastify'), { root: '/srv/www', prefix: '/static/' })
 *
 * A response with a file body is written on reply.raw after reply.hijack():
 * Fastify's onSend hooks and serializers do not see it. Headers set with
 * reply.header() and the status set with reply.code() before the call are
 * carried over. Errors before the headers go through Fastify as usual:
 * 404 to the not-found handler, others to the error handler.
 */

const { internal: staticInternal } = require('./static');

const { resolve, resolveDecoded, staticOptions, checkRoot, serveResolved, pathname } =
  staticInternal;

const PLUGIN_OPTIONS = ['root', 'prefix', 'serve', 'decorateReply', 'wildcard'];

function typeError(code, message) {
  const err = new TypeError(message);
  err.code = code;
  return err;
}

function only(options, exclude) {
  const o = {};
  for (const [k, v] of Object.entries(options || {})) {
    if (!exclude.includes(k))
      o[k] = v;
  }
  return o;
}

function redirectLocation(url) {
  const q = url.search(/[?#]/);
  const p = q === -1 ? url : url.slice(0, q);
  return (p + '/').replace(/^\/{2,}/, '/') + (q === -1 ? '' : url.slice(q));
}

/*
 * Answers @reply from a resolve() result. Return: a promise settled when
 * the response is complete (or handed to Fastify).
 */
async function answer(reply, r, opts) {
  if (r.kind === 'redirect') {
    reply.code(301).header('location', redirectLocation(reply.request.raw.url || '/'));
    return reply.send();
  }
  if (r.kind === 'error') {
    if (r.status === 404)
      return reply.callNotFound();
    return reply.send(r.error);
  }
  const raw = reply.raw;
  for (const [k, v] of Object.entries(reply.getHeaders())) {
    if (v !== undefined)
      raw.setHeader(k, v);
  }
  raw.statusCode = reply.statusCode;
  reply.hijack();
  return serveResolved(reply.request.raw, raw, r, opts);
}

/* Runs @work for @reply; failures go to Fastify, or cut the connection if too late. */
function start(reply, work) {
  work().catch((err) => {
    if (!reply.sent && !reply.raw.headersSent)
      return reply.send(err);
    if (reply.raw.socket)
      reply.raw.socket.destroy();
    return undefined;
  });
  return reply;
}

async function sendfiledFastify(fastify, options) {
  options = options || {};
  if (typeof options !== 'object')
    throw typeError('ERR_INVALID_ARG_TYPE', 'The plugin options must be an object');
  const root = options.root === undefined ? null : checkRoot(options.root);
  const base = only(options, PLUGIN_OPTIONS);
  const opts = staticOptions(base);
  let prefix = options.prefix === undefined ? '/' : options.prefix;
  if (typeof prefix !== 'string' || !prefix.startsWith('/'))
    throw typeError('ERR_INVALID_ARG_VALUE', 'The "prefix" option must start with "/"');
  if (!prefix.endsWith('/'))
    prefix += '/';

  if (options.decorateReply !== false) {
    /*
     * reply.sendFile(name[, root][, options]): @name is relative to @root
     * (or the plugin's root), not URL-encoded; ".." and dotfiles are
     * refused as for URLs. Returns the reply, so that an async handler can
     * `return reply.sendFile(...)`.
     */
    fastify.decorateReply('sendFile', function sendFile(name, rootOrOptions, maybeOptions) {
      const reply = this;
      let dir = root;
      let o = opts;
      let extra = rootOrOptions;
      if (typeof rootOrOptions === 'string') {
        dir = checkRoot(rootOrOptions);
        extra = maybeOptions;
      }
      if (extra !== undefined)
        o = staticOptions(Object.assign({}, base, extra));
      if (typeof name !== 'string' || name === '')
        throw typeError('ERR_INVALID_ARG_TYPE', 'The file name must be a non-empty string');
      if (!dir)
        throw typeError('ERR_INVALID_ARG_VALUE',
          'reply.sendFile() needs a root: pass one, or register the plugin with { root }');
      return start(reply, async () => answer(reply, await resolveDecoded(dir, name, o), o));
    });
  }

  if (root && options.serve !== false) {
    const handler = function sendfiledStatic(request, reply) {
      /* The path as it came, decoded once here (find-my-way's decoded copy is not used). */
      const route = request.routeOptions && request.routeOptions.url;
      const raw = pathname(request.raw.url);
      const fixed = typeof route === 'string' && route.endsWith('*') ? route.slice(0, -1) : null;
      if (fixed !== null && raw.startsWith(fixed))
        return start(reply, async () =>
          answer(reply, await resolve(root, '/' + raw.slice(fixed.length), opts), opts));
      const rel = '/' + (request.params['*'] || '');
      return start(reply, async () => answer(reply, await resolveDecoded(root, rel, opts), opts));
    };
    fastify.get(prefix + '*', handler);
    if (prefix !== '/')
      fastify.get(prefix.slice(0, -1), (request, reply) => {
        const url = request.raw.url || prefix;
        reply.code(301).header('location', redirectLocation(url)).send();
      });
  }
}

/* Not encapsulated: the decorator is visible to the routes of the parent. */
sendfiledFastify[Symbol.for('skip-override')] = true;
sendfiledFastify[Symbol.for('fastify.display-name')] = 'sendfiled';
sendfiledFastify[Symbol.for('plugin-meta')] = { name: 'sendfiled', fastify: '>=4' };

module.exports = sendfiledFastify;
module.exports.default = sendfiledFastify;
module.exports.sendfiledFastify = sendfiledFastify;
