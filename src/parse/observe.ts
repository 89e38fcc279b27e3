/**
 * Turns the observe script's output (see render/scripts.ts) into ObservedHostState: one
 * round trip's text becomes all the structured state the planner needs.
 */
import { createHash } from "node:crypto";
import { textSha256, type ObservedFile, type ObservedHostState } from "../model/host-state";
import { destinationKey } from "../model/keys";
import { hostPaths } from "../model/paths";
import { parseIpAddr, parseRouteBatch } from "./ip";
import { ParseError, parseIpvsRules, parseIpvsThresholds } from "./ipvsadm";
import { parseOwnershipRecord } from "./ownership";
import { parseSysctlFiles } from "./sysctl";

const marker = "@@lvsdr";
/** The observe script's output format this parser reads (render/scripts.ts writes it). */
const observeVersion = "2";

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
  let rulesText = "";
  let thresholdsText = "";
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
        case "ipvs-thresholds":
          thresholdsText = body;
          break;
        case "sysctl-files":
          state.sysctls = parseSysctlFiles(body);
          break;
        case "file-digests":
          Object.assign(state.files, parseFileDigests(block.body));
          break;
      }
    } else if (kind === "ipvs") {
      if (arg !== "loaded" && arg !== "not-loaded" && arg !== "no-ipvsadm") throw new ParseError(`observation of ${host}`, `unknown IPVS status ${arg}`);
      state.ipvs.status = arg;
      // The exact bytes `ipvsadm -Sn` wrote: the apply script hashes them again on the host.
      rulesText = block.body.length ? `${body}\n` : "";
    } else if (kind === "file" && path) {
      state.files[path] = decodeFile(arg, block.body);
    } else if (kind === "arp" && arg) {
      state.arpReplies[arg] = path === "ok";
    }
  }

  if (state.ipvs.status === "loaded") {
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
  if (kind === "present") {
    const bytes = Buffer.from(body.join(""), "base64");
    return { isLink: false, sha256: createHash("sha256").update(bytes).digest("hex"), content: bytes.toString("utf8") };
  }
  throw new ParseError("observation", `unknown file state ${kind}`);
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
