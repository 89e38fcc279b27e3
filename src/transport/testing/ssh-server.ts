/**
 * A real in-process SSH server for tests: ssh2's `Server` on 127.0.0.1:0 that authenticates
 * by key or password, really runs exec'd commands through /bin/sh, honours signal requests,
 * and (optionally) forwards direct-tcpip channels, so it can act as a bastion.
 */
import { spawn } from "node:child_process";
import { timingSafeEqual } from "node:crypto";
import { connect as netConnect, type AddressInfo, type Socket } from "node:net";
import { Server, utils, type Connection as ServerConnection, type ParsedKey } from "ssh2";
import { fingerprintOf } from "../host-key";

export interface TestServerOptions {
  user?: string;
  /** Accepted password (password and keyboard-interactive). */
  password?: string;
  /** Only offer keyboard-interactive for the password (not `password`). */
  keyboardInteractiveOnly?: boolean;
  /** An accepted client public key line (`ssh-ed25519 AAAA...`). */
  authorizedKey?: string;
  /** Accept direct-tcpip channels (act as a bastion). */
  allowForwarding?: boolean;
  /** How `[exec] sudo -n <cmd>` is handled: run `<cmd>` (as a NOPASSWD sudoer would), or refuse as sudo does. */
  sudo?: "strip" | "refuse";
  /** Listen on this port instead of a free one. */
  port?: number;
}

export interface TestServer {
  port: number;
  /** `ssh-ed25519 AAAA...` of the host key. */
  hostKeyLine: string;
  hostKeyBlob: Buffer;
  fingerprint: string;
  /** TCP connections accepted so far. */
  connections: number;
  /** Commands exec'd so far. */
  commands: string[];
  close(): Promise<void>;
}

export function generateKey(passphrase?: string): { privateKey: string; publicLine: string } {
  // ssh2 now and then writes an ed25519 key its own parser calls malformed; take the next one.
  for (let attempt = 0; attempt < 20; attempt++) {
    const pair = passphrase ? utils.generateKeyPairSync("ed25519", { passphrase, cipher: "aes256-ctr", rounds: 2 }) : utils.generateKeyPairSync("ed25519");
    const check = utils.parseKey(pair.private, passphrase);
    if (!(check instanceof Error)) return { privateKey: pair.private, publicLine: pair.public.trim() };
  }
  throw new Error("ssh2 could not generate a parseable ed25519 key in 20 attempts");
}

function parsed(key: string): ParsedKey {
  const k = utils.parseKey(key);
  const first = Array.isArray(k) ? k[0] : k;
  if (!first || first instanceof Error) throw new Error("bad key");
  return first;
}

const same = (a: Buffer, b: Buffer) => a.length === b.length && timingSafeEqual(a, b);

export async function startTestServer(options: TestServerOptions = {}): Promise<TestServer> {
  const host = generateKey();
  const hostKeyLine = host.publicLine.split(" ").slice(0, 2).join(" ");
  const hostKeyBlob = Buffer.from(hostKeyLine.split(" ")[1]!, "base64");
  const user = options.user ?? "tester";
  const authorized = options.authorizedKey ? parsed(options.authorizedKey) : undefined;
  const sockets = new Set<Socket>();
  const clients = new Set<ServerConnection>();
  const groups = new Set<(signal: NodeJS.Signals) => void>();

  const state: TestServer = {
    port: 0,
    hostKeyLine,
    hostKeyBlob,
    fingerprint: fingerprintOf(hostKeyBlob),
    connections: 0,
    commands: [],
    close: async () => undefined,
  };

  const server = new Server({ hostKeys: [host.privateKey] }, (client) => {
    clients.add(client);
    client.on("close", () => clients.delete(client));
    client.on("error", () => undefined);
    client.on("authentication", (ctx) => {
      if (ctx.username !== user) return ctx.reject();
      switch (ctx.method) {
        case "publickey":
          if (!authorized || ctx.key.algo !== authorized.type || !same(ctx.key.data, authorized.getPublicSSH())) return ctx.reject();
          if (ctx.signature && ctx.blob && authorized.verify(ctx.blob, ctx.signature, ctx.hashAlgo) !== true) return ctx.reject();
          return ctx.accept();
        case "password":
          if (options.password === undefined || options.keyboardInteractiveOnly) return ctx.reject();
          return ctx.password === options.password ? ctx.accept() : ctx.reject();
        case "keyboard-interactive":
          if (options.password === undefined) return ctx.reject();
          return ctx.prompt([{ prompt: "Password: ", echo: false }], (answers) => (answers[0] === options.password ? ctx.accept() : ctx.reject()));
        default:
          return ctx.reject(["publickey", "password", "keyboard-interactive"]);
      }
    });
    client.on("tcpip", (accept, reject, info) => {
      if (!options.allowForwarding) return reject();
      const sock = netConnect(info.destPort, info.destIP);
      sockets.add(sock);
      sock.on("close", () => sockets.delete(sock));
      sock.once("error", () => reject());
      sock.once("connect", () => {
        const channel = accept();
        channel.on("error", () => sock.destroy());
        sock.pipe(channel).pipe(sock);
      });
    });
    client.on("session", (acceptSession) => {
      const session = acceptSession();
      let kill: ((signal: NodeJS.Signals) => void) | undefined;
      // ssh2's Server drops signal requests once the client has sent EOF (as our transport
      // always has), so on timeout only the host-side `timeout` wrapper kills the script here.
      session.on("signal", (_accept, _reject, info) => kill?.(`SIG${info.name}` as NodeJS.Signals));
      session.on("exec", (accept, _reject, info) => {
        const channel = accept();
        state.commands.push(info.command);
        let command = info.command;
        const sudo = /^(exec )?sudo -n /.exec(command);
        if (sudo) {
          if (options.sudo !== "strip") {
            channel.stderr.write("sudo: a password is required\n");
            channel.exit(1);
            channel.end();
            return;
          }
          command = (sudo[1] ?? "") + command.slice(sudo[0].length);
        }
        // Like sshd: the command leads its own session, a signal request goes to its process
        // group (killpg), and closing the channel kills nothing.
        const child = spawn("/bin/sh", ["-c", command], { stdio: ["pipe", "pipe", "pipe"], detached: true });
        const pgid = child.pid;
        kill = (signal) => {
          try {
            if (pgid !== undefined) process.kill(-pgid, signal);
          } catch {
            /* already gone */
          }
        };
        groups.add(kill);
        child.on("exit", () => groups.delete(kill!));
        channel.on("data", (d: Buffer) => child.stdin.write(d));
        channel.on("end", () => child.stdin.end());
        child.stdin.on("error", () => undefined);
        child.stdout.on("data", (d: Buffer) => channel.write(d));
        child.stderr.on("data", (d: Buffer) => channel.stderr.write(d));
        child.on("close", (code, signal) => {
          if (code !== null) channel.exit(code);
          else channel.exit((signal ?? "KILL").replace(/^SIG/, ""), false, "");
          channel.end();
        });
      });
    });
  });
  server.on("connection", () => state.connections++);

  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(options.port ?? 0, "127.0.0.1", () => resolve());
  });
  state.port = (server.address() as AddressInfo).port;
  state.close = () =>
    new Promise<void>((resolve) => {
      for (const kill of groups) kill("SIGKILL");
      for (const c of clients) c.end();
      for (const s of sockets) s.destroy();
      server.close(() => resolve());
    });
  return state;
}
