/**
 * Turns the observe script's output (see render/observe-script.ts) into ObservedHostState: one
 * round trip's text becomes all the structured state the planner needs.
 */
import { textSha256, type HostStateCheck, type HostStateScope, type IpvsTimeouts, type ObservedFile, type ObservedHostState } from "../model/host-state";
import { destinationKey } from "../model/keys";
import { hostPaths } from "../model/paths";
import { marker } from "../model/script-protocol";
import { parseEthtoolFeatures, parseProcNetSockets } from "./doctor";
import { parseDefaultRoutes, parseIpAddr, parseNeighbours, parseRouteBatch } from "./ip";
import { kernelTableListing, ParseError, parseIpvsListing, parseKernelTable } from "./ipvsadm";
import { parseOwnershipRecord } from "./ownership";
import { hostRecord, own } from "./records";

/** The observe script's output format this parser reads (render/observe-script.ts writes it). */
const observeVersion = "6";

interface Block {
  header: string[];
  body: string[];
}

function splitBlocks(text: string): Block[] {
  const blocks: Block[] = [];
  let current: Block | null = null;
  for (const line of text.split("\n")) {
    if (line.startsWith(`${marker} `)) {
      current = {
        header: line
          .slice(marker.length + 1)
          .trim()
          .split(/\s+/),
        body: [],
      };
      blocks.push(current);
    } else if (current) {
      current.body.push(line);
    }
  }
  return blocks;
}

/** The two listings of the IPVS table in one observation disagree: it changed between them. */
export class TableChangedError extends ParseError {}

/** `stateScope`: for the observation a plan is made from, what its state check covers. */
export function parseObservation(host: string, output: string, stateScope?: HostStateScope): ObservedHostState {
  const first = splitBlocks(output.slice(0, output.indexOf("\n") + 1))[0];
  if (first?.header[0] !== "observe") throw new ParseError(`observation of ${host}`, "the output does not start with the observe marker");
  if (first.header[1] !== observeVersion) throw new ParseError(`observation of ${host}`, `the output is of observe script version ${first.header[1]}, not ${observeVersion}`);
  // The read section is records, not lines: cut it out before the lines are split into blocks.
  const { text, records } = cutReadRecords(output);
  const blocks = splitBlocks(text);
  if (blocks[blocks.length - 1]?.header[0] !== "end") throw new ParseError(`observation of ${host}`, "the output was cut short (no end marker)");

  const state: ObservedHostState = {
    host,
    addresses: [],
    interfaces: [],
    tools: [],
    ipvs: { status: "not-observed", fingerprint: null, listing: null, services: [], destinations: [], timeouts: null },
    // Keyed by what the host says: no prototype, so `__proto__` or `constructor` is just a key.
    sysctls: hostRecord(),
    files: hostRecord(),
    ownership: null,
    routes: [],
    neighbours: [],
    arpReplies: hostRecord(),
    keepalived: null,
  };
  const doctor = () => (state.doctor ??= { listeners: null, offloads: null });
  let ipvsText = "";
  const absentKeys: string[] = [];
  const readByGrep: string[] = [];
  for (const block of blocks) {
    const [kind, arg, path] = block.header;
    const body = block.body.join("\n");
    if (kind === "section") {
      switch (arg) {
        case "tools":
          // The names of the commands found (a path from older scripts: its last part).
          state.tools = block.body.map((l) => l.trim().split("/").pop() ?? "").filter(Boolean);
          break;
        case "ip": {
          // One `ip -j -batch` run: the addresses' JSON line first, the neighbour table's next
          // when the header says "neigh", then one line per route found.
          // The header's words name the optional lines in their order: "neigh", then "default".
          const words = new Set(block.header.slice(2));
          const lines = block.body.filter((l) => l.trim() !== "");
          const parsed = parseIpAddr(lines.shift() ?? "");
          state.addresses = parsed.addresses;
          state.interfaces = parsed.interfaces.map((i) => i.name);
          state.links = parsed.interfaces;
          if (words.has("neigh")) state.neighbours = parseNeighbours(lines.shift() ?? "");
          if (words.has("default")) state.defaultRoutes = parseDefaultRoutes(lines.shift() ?? "");
          state.routes = parseRouteBatch(lines.join("\n"));
          break;
        }
        case "listeners":
          doctor().listeners = parseProcNetSockets(body);
          break;
        case "offloads":
          doctor().offloads = { interface: path ?? "", features: parseEthtoolFeatures(body) };
          break;
        case "sysctl-absent":
          absentKeys.push(...block.body.filter((l) => l.trim() !== ""));
          break;
      }
    } else if (kind === "ipvs") {
      if (arg !== "loaded" && arg !== "not-loaded" && arg !== "no-ipvsadm") throw new ParseError(`observation of ${host}`, `unknown IPVS status ${arg}`);
      state.ipvs.status = arg;
      ipvsText = body;
    } else if (kind === "offloads") {
      // `offloads IFACE no-ethtool`: the check could not run.
      doctor().offloads = { interface: arg ?? "", features: null };
    } else if (kind === "keepalived") {
      const words = new Set(block.header.slice(1));
      state.keepalived = { installed: words.has("installed"), running: words.has("running"), enabled: words.has("enabled") };
    } else if (kind === "file" && path) {
      if (arg === "read") readByGrep.push(path);
      else state.files[path] = decodeFile(arg, block.body);
    }
  }

  const read = readRecords(records, new Set(readByGrep));
  for (const [key, value] of Object.entries(read.sysctls)) state.sysctls[key] = value;
  for (const key of absentKeys) state.sysctls[key] = null;
  for (const path of readByGrep) {
    // An empty file is no record at all.
    const content = read.files.get(path) ?? "";
    state.files[path] = { isLink: false, sha256: textSha256(content), content };
  }

  if (state.ipvs.status === "loaded") {
    const { listingText, timeouts } = splitIpvsListings(ipvsText);
    state.ipvs.timeouts = timeouts;
    // Services, thresholds and counters from ipvsadm's listing; weights and forwarding from the
    // kernel's own, read with the files in the same script. One ipvsadm listing, not two (each
    // costs half a second on a 10,000-entry table on the lab's director); the apply script's
    // check reads the kernel's listing too.
    if (read.kernelTable === null) throw new ParseError(`observation of ${host}`, "/proc/net/ip_vs was not read");
    const kernel = parseKernelTable(read.kernelTable);
    const listed = parseIpvsListing(listingText);
    state.ipvs.listing = kernelTableListing(read.kernelTable);
    state.ipvs.fingerprint = textSha256(state.ipvs.listing);
    state.ipvs.services = listed.services;
    const changed = () => new TableChangedError(`observation of ${host}`, "the IPVS table changed while it was observed; observe again");
    state.ipvs.destinations = listed.destinations.map((d) => {
      // Both listings are of one table: a destination missing from one means it changed between them.
      const seen = kernel.get(destinationKey(d));
      if (!seen) throw changed();
      return { ...d, weight: seen.weight, forwarding: seen.forwarding };
    });
    if ([...kernel.keys()].filter((k) => !k.startsWith("other:")).length !== listed.destinations.length) throw changed();
  }
  if (stateScope) state.state = hostStateCheck(stateScope, state, read.raw);
  const ownership = state.files[hostPaths.ownership];
  if (ownership && !ownership.isLink && ownership.content !== undefined) state.ownership = parseOwnershipRecord(ownership.content);
  return state;
}

function decodeFile(kind: string | undefined, body: string[]): ObservedFile | null {
  if (kind === "absent") return null;
  if (kind === "link") return { isLink: true, target: (body[0] ?? "").trim() };
  throw new ParseError("observation", `unknown file state ${kind}`);
}

/** The one `ipvsadm -R` run: `ipvsadm -Ln --exact --thresholds`, then `ipvsadm -L --timeout`'s one line. */
function splitIpvsListings(body: string): { listingText: string; timeouts: IpvsTimeouts | null } {
  const lines = body.split("\n");
  const at = lines.findIndex((l) => l.startsWith("Timeout (tcp tcpfin udp): "));
  if (at < 0) throw new ParseError("observation", "the IPVS timeouts are missing");
  const m = /^Timeout \(tcp tcpfin udp\): (\d+) (\d+) (\d+)\s*$/.exec(lines[at]!);
  if (!m) throw new ParseError("observation", `unexpected IPVS timeouts line "${lines[at]}"`);
  return { listingText: lines.slice(0, at).join("\n"), timeouts: { tcp: Number(m[1]), tcpFin: Number(m[2]), udp: Number(m[3]) } };
}

/**
 * The read section, `grep -z` output: a record per file (per NUL-separated part of one), each
 * `path:content` and a NUL. It starts after its marker line and ends where a marker line starts
 * instead of a record; the rest of the output goes on in lines.
 */
function cutReadRecords(output: string): { text: string; records: string[] } {
  const head = `\n${marker} section read\n`;
  const start = output.indexOf(head);
  if (start < 0) return { text: output, records: [] };
  let at = start + head.length;
  const records: string[] = [];
  while (at < output.length && !output.startsWith(`${marker} `, at)) {
    const end = output.indexOf("\0", at);
    if (end < 0) throw new ParseError("observation", "the values read end without their NUL");
    records.push(output.slice(at, end));
    at = end + 1;
  }
  return { text: output.slice(0, start + 1) + output.slice(at), records };
}

/**
 * Records into /proc/sys values, by key (`net/ipv4/conf/all/arp_ignore`), and file contents.
 * Only /proc/sys paths and the files the output announced are accepted; the parts of a file
 * holding NUL bytes are joined again.
 */
function readRecords(
  records: string[],
  announced: Set<string>,
): { sysctls: Record<string, string>; files: Map<string, string>; kernelTable: string | null; raw: Map<string, string[]> } {
  const sysctls = hostRecord<string>();
  const files = new Map<string, string>();
  const raw = new Map<string, string[]>();
  let kernelTable: string | null = null;
  for (const record of records) {
    const colon = record.indexOf(":");
    const path = colon < 0 ? "" : record.slice(0, colon);
    const content = record.slice(colon + 1);
    // Appended in place: copying the list per record is quadratic in a host's records for one path.
    const parts = raw.get(path);
    if (parts) parts.push(content);
    else raw.set(path, [content]);
    if (path === "/proc/net/ip_vs") kernelTable = content;
    else if (path.startsWith("/proc/sys/")) sysctls[path.slice("/proc/sys/".length)] = content.replace(/\n/g, " ").trim();
    else if (announced.has(path)) files.set(path, files.has(path) ? `${files.get(path)}\0${content}` : content);
    else throw new ParseError("observation", `unexpected record "${record.slice(0, 80)}" among the values read`);
  }
  return { sysctls, files, kernelTable, raw };
}

/**
 * What the apply script checks (render/apply-script.ts, `hostStateCheck`), from this
 * observation: the addresses on the scope's interfaces, and the SHA-256 of a line per scope file
 * that is a link or a regular file and per scope kernel setting that exists (by position), then
 * the text of those settings and regular files as `grep -z -h` prints it. The observe script read
 * the same bytes; no path is in them.
 */
function hostStateCheck(scope: HostStateScope, state: ObservedHostState, raw: ReadonlyMap<string, string[]>): HostStateCheck {
  const interfaces = new Set(scope.interfaces);
  const addresses = state.addresses.filter((a) => interfaces.has(a.interface)).map((a) => `${a.interface} ${a.address}/${a.prefix}`);
  let text = "";
  scope.files.forEach((path, i) => {
    const file = own(state.files, path);
    if (file?.isLink) text += `link ${i}\n`;
    else if (file) text += `file ${i}\n`;
  });
  scope.sysctlKeys.forEach((key, i) => {
    const value = own(state.sysctls, key);
    if (value !== undefined && value !== null) text += `key ${i}\n`;
  });
  const records = [...scope.sysctlKeys.map((k) => `/proc/sys/${k}`), ...scope.files.filter((f) => own(state.files, f)?.isLink === false)];
  for (const path of records) for (const part of raw.get(path) ?? []) text += `${part}\0`;
  return { ...scope, addresses, sha256: textSha256(text) };
}

/** The ARP probe script's output: per RIP, whether it answered. */
export function parseArpProbes(host: string, text: string): Record<string, boolean> {
  const blocks = splitBlocks(text);
  if (blocks[0]?.header[0] !== "probe" || blocks[blocks.length - 1]?.header[0] !== "end") {
    throw new ParseError(`ARP probes from ${host}`, "the output is incomplete");
  }
  const replies = hostRecord<boolean>();
  for (const b of blocks) if (b.header[0] === "arp" && b.header[1]) replies[b.header[1]] = b.header[2] === "ok";
  return replies;
}
