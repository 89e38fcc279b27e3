/**
 * Turns the observe script's output (see render/scripts.ts) into ObservedHostState: one
 * round trip's text becomes all the structured state the planner needs.
 */
import { textSha256, type ObservedFile, type ObservedHostState } from "../model/host-state";
import { destinationKey } from "../model/keys";
import { hostPaths } from "../model/paths";
import { parseIpAddr, parseRouteBatch } from "./ip";
import { ParseError, parseIpvsRules, parseIpvsThresholds } from "./ipvsadm";
import { parseOwnershipRecord } from "./ownership";
import { parseSysctlFiles } from "./sysctl";

const marker = "@@lvsdr";
/** The observe script's output format this parser reads (render/scripts.ts writes it). */
const observeVersion = "3";

interface Block {
  header: string[];
  body: string[];
}

function splitBlocks(text: string): Block[] {
  const blocks: Block[] = [];
  let current: Block | null = null;
  for (const line of text.split("\n")) {
    if (line.startsWith(`${marker} `)) {
      current = { header: line.slice(marker.length + 1).trim().split(/\s+/), body: [] };
      blocks.push(current);
    } else if (current) {
      current.body.push(line);
    }
  }
  return blocks;
}

export function parseObservation(host: string, text: string): ObservedHostState {
  const blocks = splitBlocks(text);
  if (blocks[0]?.header[0] !== "observe") throw new ParseError(`observation of ${host}`, "the output does not start with the observe marker");
  if (blocks[0].header[1] !== observeVersion) throw new ParseError(`observation of ${host}`, `the output is of observe script version ${blocks[0].header[1]}, not ${observeVersion}`);
  if (blocks[blocks.length - 1]?.header[0] !== "end") throw new ParseError(`observation of ${host}`, "the output was cut short (no end marker)");

  const state: ObservedHostState = {
    host,
    addresses: [],
    interfaces: [],
    tools: [],
    ipvs: { status: "not-observed", fingerprint: null, listing: null, services: [], destinations: [] },
    sysctls: {},
    files: {},
    ownership: null,
    routes: [],
    arpReplies: {},
  };
  let ipvsText = "";
  let readText = "";
  const readByGrep: string[] = [];
  for (const block of blocks) {
    const [kind, arg, path] = block.header;
    const body = block.body.join("\n");
    if (kind === "section") {
      switch (arg) {
        case "tools":
          // `command -v` prints where each tool is: its name is the last part.
          state.tools = block.body.map((l) => l.trim().split("/").pop() ?? "").filter(Boolean);
          break;
        case "ip": {
          // One `ip -j -batch` run: the addresses' JSON line first, then one line per route found.
          const [addr = "", ...routes] = block.body.filter((l) => l.trim() !== "");
          const parsed = parseIpAddr(addr);
          state.addresses = parsed.addresses;
          state.interfaces = parsed.interfaces.map((i) => i.name);
          state.routes = parseRouteBatch(routes.join("\n"));
          break;
        }
        case "read":
          readText = body;
          break;
        case "file-digests":
          Object.assign(state.files, parseFileDigests(block.body));
          break;
      }
    } else if (kind === "ipvs") {
      if (arg !== "loaded" && arg !== "not-loaded" && arg !== "no-ipvsadm") throw new ParseError(`observation of ${host}`, `unknown IPVS status ${arg}`);
      state.ipvs.status = arg;
      ipvsText = body;
    } else if (kind === "file" && path) {
      if (arg === "read") readByGrep.push(path);
      else state.files[path] = decodeFile(arg, block.body);
    } else if (kind === "arp" && arg) {
      state.arpReplies[arg] = path === "ok";
    }
  }

  const read = splitReadLines(readText);
  state.sysctls = parseSysctlFiles(read.sysctls.join("\n"));
  for (const path of readByGrep) {
    // grep ends every line with a newline, so a missing last one is not seen: the only file
    // read this way is the ownership record, which the planner compares as data.
    const text = (read.files.get(path) ?? []).map((l) => `${l}\n`).join("");
    state.files[path] = { isLink: false, sha256: textSha256(text), content: text };
  }

  if (state.ipvs.status === "loaded") {
    const { rulesText, thresholdsText } = splitIpvsListings(ipvsText);
    const table = parseIpvsRules(rulesText);
    state.ipvs.fingerprint = textSha256(rulesText);
    state.ipvs.listing = rulesText;
    const counters = parseIpvsThresholds(thresholdsText);
    state.ipvs.services = table.services;
    state.ipvs.destinations = table.destinations.map((d) => {
      const c = counters.get(destinationKey(d));
      return {
        ...d,
        upperThreshold: c?.upperThreshold ?? d.upperThreshold,
        lowerThreshold: c?.lowerThreshold ?? d.lowerThreshold,
        activeConnections: c?.activeConnections ?? 0,
        inactiveConnections: c?.inactiveConnections ?? 0,
      };
    });
  }
  const ownership = state.files[hostPaths.ownership];
  if (ownership && !ownership.isLink && ownership.content !== undefined) state.ownership = parseOwnershipRecord(ownership.content);
  return state;
}

function decodeFile(kind: string | undefined, body: string[]): ObservedFile | null {
  if (kind === "absent") return null;
  if (kind === "link") return { isLink: true, target: (body[0] ?? "").trim() };
  if (kind === "text") {
    const content = body.map((l) => (l.startsWith("|") ? `${l.slice(1)}\n` : l.startsWith("/") ? l.slice(1) : null));
    if (content.some((l) => l === null)) throw new ParseError("observation", "a file's text line has no | or / prefix");
    const text = content.join("");
    return { isLink: false, sha256: textSha256(text), content: text };
  }
  throw new ParseError("observation", `unknown file state ${kind}`);
}

/**
 * The one `ipvsadm -R` run: `ipvsadm -Sn`'s exact bytes (the apply script lists them again on
 * the host), then the thresholds listing, which starts with its version line.
 */
function splitIpvsListings(body: string): { rulesText: string; thresholdsText: string } {
  const lines = body.split("\n");
  const at = lines.findIndex((l) => l.startsWith("IP Virtual Server version "));
  if (at < 0) throw new ParseError("observation", "the IPVS thresholds listing is missing");
  const rules = lines.slice(0, at);
  return { rulesText: rules.length ? `${rules.join("\n")}\n` : "", thresholdsText: lines.slice(at).join("\n") };
}

/**
 * The read section: grep's `path:line` lines (no path read holds a colon), /proc/sys values
 * apart from the lines of files, and `<key>!absent` lines for sysctl keys that do not exist.
 */
function splitReadLines(body: string): { sysctls: string[]; files: Map<string, string[]> } {
  const sysctls: string[] = [];
  const files = new Map<string, string[]>();
  for (const line of body.split("\n")) {
    if (line.startsWith("/proc/sys/") || line.endsWith("!absent") || line.trim() === "") {
      sysctls.push(line);
      continue;
    }
    const colon = line.indexOf(":");
    if (!line.startsWith("/") || colon < 0) throw new ParseError("observation", `unexpected line "${line}" among the values read`);
    const path = line.slice(0, colon);
    const lines = files.get(path) ?? [];
    if (lines.length === 0) files.set(path, lines);
    lines.push(line.slice(colon + 1));
  }
  return { sysctls, files };
}

/** `sha256sum` lines: `<64 hex>  <path>`. */
function parseFileDigests(body: string[]): Record<string, ObservedFile> {
  const files: Record<string, ObservedFile> = {};
  for (const line of body) {
    if (line.trim() === "") continue;
    const m = /^([0-9a-f]{64}) [ *](\/\S+)$/.exec(line);
    if (!m) throw new ParseError("observation", `unexpected sha256sum line "${line}"`);
    files[m[2]!] = { isLink: false, sha256: m[1]! };
  }
  return files;
}

/** The ARP probe script's output: per RIP, whether it answered. */
export function parseArpProbes(host: string, text: string): Record<string, boolean> {
  const blocks = splitBlocks(text);
  if (blocks[0]?.header[0] !== "probe" || blocks[blocks.length - 1]?.header[0] !== "end") {
    throw new ParseError(`ARP probes from ${host}`, "the output is incomplete");
  }
  const replies: Record<string, boolean> = {};
  for (const b of blocks) if (b.header[0] === "arp" && b.header[1]) replies[b.header[1]] = b.header[2] === "ok";
  return replies;
}
