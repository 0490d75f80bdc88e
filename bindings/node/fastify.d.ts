import type { ServeStaticOptions } from './lib/http';

export interface SendfiledFastifyOptions extends ServeStaticOptions {
  /** The directory served, and reply.sendFile()'s default root. */
  root?: string;
  /** URL prefix of the directory route (default '/'). */
  prefix?: string;
  /** Register the directory route (default true when root is given). */
  serve?: boolean;
  /** Decorate the reply with sendFile() (default true). */
  decorateReply?: boolean;
}

declare module 'fastify' {
  interface FastifyReply {
    sendFile(name: string, root?: string, options?: ServeStaticOptions): FastifyReply;
    sendFile(name: string, options?: ServeStaticOptions): FastifyReply;
  }
}

declare function sendfiledFastify(instance: import('fastify').FastifyInstance,
  options: SendfiledFastifyOptions): Promise<void>;

export default sendfiledFastify;
export { sendfiledFastify };
