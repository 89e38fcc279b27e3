/**
 * How a script reaches a host over an exec request: inline as one argument of the shell, or on
 * stdin when large, and with its own deadline on the host. The transport's business, not the
 * scripts' (render/): any script travels this way.
 */
import { assertUint, quote } from "../render/shell";

/**
 * A large script is sent on stdin and run once all of it has arrived: `cat` reads it in large
 * blocks. `sh -s` would read it from the pipe one byte per read(2) (bash must not consume input
 * meant for the script's commands), which on a slow host costs more than the script's work: a
 * 1.2 MB script took 138 s through `sh -s` on the lab's emulated director and 3.8 s this way.
 */
const runScriptFromStdin = `lvsdr_script=$(cat) || exit 125; eval "$lvsdr_script"`;

/**
 * Scripts travel in the exec request itself, as one argument of `sh -c`, while the command sent
 * is at most this size: no process reads them (a `cat` costs 70 ms on the emulated director).
 * The limit is on the command as sent, quoting included (each `'` of a script becomes four
 * characters), since sshd hands that whole command to the login shell as one argument: Linux
 * refuses a single argument over 128 KiB (MAX_ARG_STRLEN), and sudo logs its command line, so
 * keep well below.
 */
export const inlineScriptLimit = 64 * 1024;

/**
 * How a script reaches the host: the command of the exec request, and what goes on stdin.
 *
 * Without sudo, the login shell sshd starts runs the script itself (`eval`): on a host where
 * starting a process is slow, a second shell is the largest cost of a round trip (60 ms of the
 * emulated director's 90 ms for `true`). zsh is not POSIX by default (no word splitting), so it
 * hands the script to /bin/sh; csh and fish never could run these commands. With sudo, `exec`
 * replaces the login shell by sudo and a POSIX shell.
 *
 * With a timeout, the script first starts its own deadline on the host (`hostDeadline`).
 */
export function remoteInvocation(script: string, sudo: boolean, timeoutMs?: number): { command: string; stdin: string } {
  const text = withDeadline(script, timeoutMs);
  if (fitsInline(text)) return { command: inlineCommand(quote(text), sudo), stdin: "" };
  return { command: inlineCommand(quote(runScriptFromStdin), sudo), stdin: text };
}

function inlineCommand(program: string, sudo: boolean): string {
  if (sudo) return `exec sudo -n /bin/sh -c ${program}`;
  return `lvsdr_script=${program}; [ -z "\${ZSH_VERSION-}" ] || exec /bin/sh -c "$lvsdr_script"; eval "$lvsdr_script"`;
}

/**
 * Whether the command carrying `text` inline is within the limit, with or without sudo (the
 * longer of the two), so that the answer does not depend on the connection.
 */
function fitsInline(text: string): boolean {
  // Quoting keeps every byte: a text over the limit is not worth quoting to find out.
  if (Buffer.byteLength(text) > inlineScriptLimit) return false;
  const program = quote(text);
  return Math.max(Buffer.byteLength(inlineCommand(program, true)), Buffer.byteLength(inlineCommand(program, false))) <= inlineScriptLimit;
}

/** Whether a script travels in the exec request, leaving its stdin free (see `remoteInvocation`). */
export function travelsInline(script: string, timeoutMs?: number): boolean {
  return fitsInline(withDeadline(script, timeoutMs));
}

function withDeadline(script: string, timeoutMs: number | undefined): string {
  return timeoutMs === undefined ? script : hostDeadline(Math.ceil(timeoutMs / 1000) + 1) + script;
}

/**
 * The host's own deadline for a script: OpenSSH does not always honour signal requests, and
 * closing the channel leaves a running script (and its `flock`) alive. A background watchdog
 * kills the script and everything it started once `seconds` have passed (a second after our
 * own timer, so the local "timeout" error is what the caller sees), and is itself stopped when
 * the script exits. Builtins only, but for one `sleep`: no `timeout` process and no second
 * shell in the way of every apply. The process tree is found in /proc rather than by process
 * group, which is not the script's own under every SSH server.
 */
function hostDeadline(seconds: number): string {
  return [
    "lvsdr_main=$$",
    "(",
    // Stopped (TERM) as soon as the script ends, which can be before the sleep's pid is known:
    // the trap then only notes it. The sleep gets KILL: a TERM that reaches it between fork and
    // exec is caught by the shell's handler and lost, leaving the sleep behind.
    "  lvsdr_sleep= lvsdr_stop=",
    `  trap 'if [ -n "$lvsdr_sleep" ]; then kill -s KILL "$lvsdr_sleep" 2>/dev/null; exit 0; fi; lvsdr_stop=1' TERM`,
    `  sleep ${assertUint(seconds)} & lvsdr_sleep=$!`,
    '  if [ -n "$lvsdr_stop" ]; then kill -s KILL "$lvsdr_sleep" 2>/dev/null; exit 0; fi',
    '  wait "$lvsdr_sleep" || exit 0',
    // This watchdog's own pid (a builtin's redirection is opened by the shell itself), so that
    // it kills every other process of the tree before it ends.
    "  read -r lvsdr_self < /proc/self/stat; lvsdr_self=${lvsdr_self%% *}",
    '  lvsdr_tree=" $lvsdr_main $lvsdr_self " lvsdr_kill=$lvsdr_main lvsdr_grown=1',
    '  while [ -n "$lvsdr_grown" ]; do',
    "    lvsdr_grown=",
    "    for f in /proc/[0-9]*/stat; do",
    '      l=; read -r l 2>/dev/null < "$f" || continue',
    "      p=${f#/proc/} && p=${p%/stat}",
    // After the command name (which may hold spaces): state, parent, ...
    '      set -- ${l##*") "}',
    '      case "$lvsdr_tree" in *" $p "*) ;; *" ${2:-x} "*) lvsdr_tree="$lvsdr_tree$p " lvsdr_kill="$lvsdr_kill $p" lvsdr_grown=1 ;; esac',
    "    done",
    "  done",
    "  kill -s KILL $lvsdr_kill",
    ") </dev/null >/dev/null 2>&1 &",
    "lvsdr_watchdog=$!",
    `trap 'kill "$lvsdr_watchdog" 2>/dev/null' EXIT`,
    "",
  ].join("\n");
}
