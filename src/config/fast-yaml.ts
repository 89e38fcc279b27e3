/**
 * A fast reader for the plain YAML that large specs are written in, because the `yaml` package
 * takes about 4 s and 500 MB for a 5 MB spec (its lexer alone takes over a second). It reads
 * block mappings and sequences, flow mappings and sequences, plain and quoted one-line scalars
 * and comments, and says where each value starts, so errors keep their line and column.
 *
 * It only ever says "this is the value `yaml` would give" or "not mine" (undefined): on anything
 * outside that subset (anchors, aliases, tags, block scalars, multi-line scalars, several
 * documents, tabs, CR, a duplicate key, a syntax error...) the caller parses with `yaml`, which
 * then reports the problem. Scalars resolve as `yaml` resolves them (YAML 1.2 core schema).
 */

/** Offsets (0-based, into the text) of where each value starts, by key or index. */
type Offsets = Record<string, number> | number[];

export interface FastYaml {
  value: unknown;
  /** Offset of the value at `segments`, or of the nearest enclosing value that exists. */
  offsetOf(segments: readonly PropertyKey[]): number;
}

/** Thrown inside the reader when the text is not in its subset. */
const notMine = Symbol("not in the fast subset");

// Characters, by code.
const NL = 10;
const SP = 32;
const HASH = 35;
const DQUOTE = 34;
const SQUOTE = 39;
const COMMA = 44;
const DASH = 45;
const DOT = 46;
const COLON = 58;
const LBRACKET = 91;
const BACKSLASH = 92;
const RBRACKET = 93;
const LBRACE = 123;
const RBRACE = 125;

/** Characters that start something other than a plain scalar (YAML's c-indicators); `-` and `:` may start one, checked apart. */
const indicators = new Set([..."?:,[]{}#&*!|>'\"%@`"].map((c) => c.charCodeAt(0)));
const isFlowIndicator = (c: number) => c === COMMA || c === LBRACKET || c === RBRACKET || c === LBRACE || c === RBRACE;

/**
 * Anything here sends the text to `yaml`: control characters (tab and CR included: `yaml` has
 * rules for them this reader does not repeat), C1 controls, a byte-order mark, and the Unicode
 * line and paragraph separators.
 */
// eslint-disable-next-line no-control-regex -- matching control characters is the point
const outsideSubset = /[\x00-\x09\x0b-\x1f\x7f-\x9f\ufeff\u2028\u2029]/;

/** Characters at which a plain scalar may end, looked at more closely where found: block context, then flow context. */
const blockStops = new Uint8Array(128);
for (const c of "\n#:") blockStops[c.charCodeAt(0)] = 1;
const flowStops = new Uint8Array(128);
for (const c of "\n#:,[]{}") flowStops[c.charCodeAt(0)] = 1;

/** Deepest nesting read here. */
const maxDepth = 200;

/** Longest key read here: `yaml` refuses implicit keys over 1024 characters. */
const maxKeyLength = 1000;

/** The value of `text` and where its values start, or undefined when `yaml` must read it. */
export function parseFastYaml(text: string): FastYaml | undefined {
  if (outsideSubset.test(text)) return undefined;
  const first = read(text, undefined);
  if (first === notMine) return undefined;
  let located: { value: unknown; offsets: Map<object, Offsets>; start: number } | undefined;
  return {
    value: first.value,
    offsetOf(segments) {
      // Where values start is recorded only when asked, in a second read: a valid spec never pays for it.
      if (!located) {
        const offsets = new Map<object, Offsets>();
        const again = read(text, offsets);
        if (again === notMine) throw new Error("the fast YAML reader read the same text differently");
        located = { ...again, offsets };
      }
      let node = located.value;
      let at = located.start;
      for (const seg of segments) {
        const o = node !== null && typeof node === "object" ? located.offsets.get(node) : undefined;
        if (o === undefined) break;
        if (Array.isArray(o)) {
          if (typeof seg !== "number" || seg < 0 || seg >= o.length) break;
          at = o[seg]!;
          node = (node as unknown[])[seg];
        } else {
          const key = typeof seg === "symbol" ? undefined : String(seg);
          if (key === undefined || !hasOwn(o, key)) break;
          at = o[key]!;
          node = (node as Record<string, unknown>)[key];
        }
      }
      return at;
    },
  };
}

function read(text: string, offsets: Map<object, Offsets> | undefined): { value: unknown; start: number } | typeof notMine {
  try {
    return new Reader(text, offsets).document();
  } catch (e) {
    if (e === notMine) return notMine;
    throw e;
  }
}

/** A plain scalar resolved as `yaml`'s core schema resolves it (null, bool, int, float, else string). */
export function resolvePlain(s: string): unknown {
  const c = s.charCodeAt(0);
  if ((c >= 48 && c <= 57) || c === 45 || c === 43 || c === 46) {
    // A digit, sign or dot: perhaps a number. Plain decimal integers, the most common, without a regex.
    const digitsFrom = c === 45 || c === 43 ? 1 : 0;
    let i = digitsFrom;
    while (i < s.length && s.charCodeAt(i) >= 48 && s.charCodeAt(i) <= 57) i++;
    if (i === s.length && i > digitsFrom) return parseInt(s, 10);
    // Two dots or a character no number has (`/`, `:`) make an address.
    if (!/^[-+.0-9a-zA-Z]+$/.test(s) || s.indexOf(".") !== s.lastIndexOf(".")) return s;
    if (/^0o[0-7]+$/.test(s)) return parseInt(s.slice(2), 8);
    if (/^0x[0-9a-fA-F]+$/.test(s)) return parseInt(s.slice(2), 16);
    if (/^(?:[-+]?\.(?:inf|Inf|INF)|\.nan|\.NaN|\.NAN)$/.test(s)) return s.slice(-3).toLowerCase() === "nan" ? NaN : s[0] === "-" ? -Infinity : Infinity;
    if (/^[-+]?(?:\.[0-9]+|[0-9]+(?:\.[0-9]*)?)[eE][-+]?[0-9]+$/.test(s)) return parseFloat(s);
    if (/^[-+]?(?:\.[0-9]+|[0-9]+\.[0-9]*)$/.test(s)) return parseFloat(s);
    return s;
  }
  // Only `~` and words starting with n, t or f (any case) can be null or a bool: anything else is a string.
  if (c !== 126 && c !== 110 && c !== 78 && c !== 116 && c !== 84 && c !== 102 && c !== 70) return s;
  if (s.length > 5 || (s.length < 4 && s !== "~")) return s;
  if (/^(?:~|[Nn]ull|NULL)$/.test(s)) return null;
  if (/^(?:[Tt]rue|TRUE)$/.test(s)) return true;
  if (/^(?:[Ff]alse|FALSE)$/.test(s)) return false;
  return s;
}

const hasOwn = (o: object, k: string) => Object.prototype.hasOwnProperty.call(o, k);

/** Double-quoted escapes read here, and what they stand for (as in JSON, plus `\0`). */
const simpleEscapes: Record<string, string> = { "\\": "\\", '"': '"', "/": "/", n: "\n", t: "\t", r: "\r", b: "\b", f: "\f", "0": "\0" };

class Reader {
  private p = 0;
  /** Start of the line `p` is on. */
  private lineStart = 0;
  private readonly n: number;
  /** Collections open around `p`. */
  private depth = 0;

  /** `offsets`: where to record where each value starts (by container), or nothing when not asked. */
  constructor(
    private readonly t: string,
    private readonly offsets: Map<object, Offsets> | undefined,
  ) {
    this.n = t.length;
  }

  document(): { value: unknown; start: number } {
    this.skipLines();
    // An empty document, a `---` start or a root indented: rare, and `yaml` has rules for each.
    if (this.p >= this.n || this.p !== this.lineStart) throw notMine;
    const start = this.p;
    const value = this.blockNode(0, -1);
    if (this.p < this.n) throw notMine; // something at a lower indent than the root, i.e. a second root
    return { value, start };
  }

  /**
   * From `p` in the middle of a line: the rest of it must be blank or a comment (a `#` after a
   * space); then on to the next content line.
   */
  private toContent(): void {
    const t = this.t;
    let p = this.p;
    while (t.charCodeAt(p) === SP) p++;
    if (p < this.n && t.charCodeAt(p) !== NL) {
      if (t.charCodeAt(p) !== HASH || t.charCodeAt(p - 1) !== SP) throw notMine;
      p = t.indexOf("\n", p);
      if (p === -1) p = this.n;
    }
    this.p = this.lineStart = p < this.n ? p + 1 : this.n;
    this.skipLines();
  }

  /**
   * From the start of a line, past blank and comment-only lines, to the first character of the
   * next line holding content (`lineStart` its start), or to the end of the text. A document
   * marker there is refused.
   */
  private skipLines(): void {
    const t = this.t;
    let p = this.p;
    for (;;) {
      const ls = p;
      while (t.charCodeAt(p) === SP) p++;
      const c = t.charCodeAt(p);
      if (p >= this.n) break;
      if (c === NL) {
        p++;
        continue;
      }
      if (c === HASH) {
        p = t.indexOf("\n", p);
        if (p === -1) break;
        p++;
        continue;
      }
      this.lineStart = ls;
      this.p = p;
      this.checkMarker(p);
      return;
    }
    this.p = this.lineStart = this.n;
  }

  /** Into a collection: deep nesting is `yaml`'s to read (this reader recurses; no spec nests more than a few levels). */
  private enter(): void {
    if (++this.depth > maxDepth) throw notMine;
  }

  private leave<T>(collection: T): T {
    this.depth--;
    return collection;
  }

  /** `---` or `...` at the start of a line starts or ends a document: not this reader's. */
  private checkMarker(p: number): void {
    if (p !== this.lineStart) return;
    const t = this.t;
    const c = t.charCodeAt(p);
    if ((c === DASH || c === DOT) && t.charCodeAt(p + 1) === c && t.charCodeAt(p + 2) === c && this.isBlankOrEnd(p + 3)) throw notMine;
  }

  private isBlankOrEnd(p: number): boolean {
    return p >= this.n || this.t.charCodeAt(p) === SP || this.t.charCodeAt(p) === NL;
  }

  private get column(): number {
    return this.p - this.lineStart;
  }

  /** Indent of the content line `p` is at the start of (p is its first non-space), or -1 at the end. */
  private get indent(): number {
    return this.p >= this.n ? -1 : this.column;
  }

  /**
   * A node in block context starting at `p` (column `col`), inside a block collection at
   * `parentIndent`. Leaves `p` at the next content line.
   */
  private blockNode(col: number, parentIndent: number): unknown {
    const t = this.t;
    const c = t.charCodeAt(this.p);
    if (c === DASH && this.isBlankOrEnd(this.p + 1)) return this.blockSeq(col);
    if (c === LBRACE || c === LBRACKET) {
      const v = this.flowCollection(parentIndent);
      this.endOfValue();
      return v;
    }
    if (c === DQUOTE || c === SQUOTE) {
      const start = this.p;
      const s = this.quoted();
      if (t.charCodeAt(this.p) === COLON || (t.charCodeAt(this.p) === SP && this.afterSpaces() === COLON)) {
        this.p = start;
        return this.blockMap(col);
      }
      this.endOfValue();
      return s;
    }
    if (this.isPlainStart(this.p, false) && this.lineHasKey()) return this.blockMap(col);
    const s = this.plainBlockValue();
    this.toContent();
    return s;
  }

  /** A block mapping whose first key is at `p`, column `col`. */
  private blockMap(col: number): Record<string, unknown> {
    this.enter();
    const t = this.t;
    const map: Record<string, unknown> = {};
    const offsets: Record<string, number> | undefined = this.offsets ? {} : undefined;
    if (offsets) this.offsets?.set(map, offsets);
    for (;;) {
      const key = this.blockKey();
      // A duplicate key (`yaml` names it), or one named like a property of every object (`toString`): `yaml`'s.
      if (map[key] !== undefined) throw notMine;
      while (t.charCodeAt(this.p) === SP) this.p++;
      let value: unknown;
      const c = t.charCodeAt(this.p);
      if (this.p >= this.n || c === NL || c === HASH) {
        // Nothing on the key's line: the value is on the next lines, or empty (null).
        const emptyAt = this.p;
        this.toContent();
        const indent = this.indent;
        if (indent > col) {
          if (offsets) offsets[key] = this.p;
          value = this.blockNode(indent, col);
        } else if (indent === col && t.charCodeAt(this.p) === DASH && this.isBlankOrEnd(this.p + 1)) {
          if (offsets) offsets[key] = this.p;
          value = this.blockSeq(col);
        } else {
          if (offsets) offsets[key] = emptyAt;
          value = null;
        }
      } else {
        if (offsets) offsets[key] = this.p;
        value = this.inlineValue(col);
      }
      map[key] = value;
      const indent = this.indent;
      if (indent < col) return this.leave(map);
      if (indent > col) throw notMine;
    }
  }

  /** A block sequence whose first `-` is at `p`, column `col`. */
  private blockSeq(col: number): unknown[] {
    this.enter();
    const t = this.t;
    const seq: unknown[] = [];
    const offsets: number[] | undefined = this.offsets ? [] : undefined;
    if (offsets) this.offsets?.set(seq, offsets);
    for (;;) {
      this.p++; // past '-'
      while (t.charCodeAt(this.p) === SP) this.p++;
      const c = t.charCodeAt(this.p);
      if (this.p >= this.n || c === NL || c === HASH) {
        const emptyAt = this.p;
        this.toContent();
        const indent = this.indent;
        if (indent > col) {
          offsets?.push(this.p);
          seq.push(this.blockNode(indent, col));
        } else {
          offsets?.push(emptyAt);
          seq.push(null);
        }
      } else {
        offsets?.push(this.p);
        seq.push(this.blockNode(this.column, col));
      }
      const indent = this.indent;
      if (indent < col) return this.leave(seq);
      if (indent > col) throw notMine;
      if (!(t.charCodeAt(this.p) === DASH && this.isBlankOrEnd(this.p + 1))) return this.leave(seq); // a mapping at the same indent goes on
    }
  }

  /** The value after `key: ` on the same line, in a mapping at `col`. Leaves `p` at the next content line. */
  private inlineValue(col: number): unknown {
    const c = this.t.charCodeAt(this.p);
    if (c === LBRACE || c === LBRACKET) {
      const v = this.flowCollection(col);
      this.endOfValue();
      return v;
    }
    if (c === DQUOTE || c === SQUOTE) {
      const s = this.quoted();
      this.endOfValue();
      return s;
    }
    const s = this.plainBlockValue();
    this.toContent();
    return s;
  }

  /** After a quoted scalar or flow collection: the rest of the line is blank or a comment; a `:` there would make it a key. */
  private endOfValue(): void {
    const c = this.t.charCodeAt(this.p);
    if (this.p < this.n && c !== NL && c !== SP) throw notMine;
    this.toContent();
  }

  private afterSpaces(): number {
    let p = this.p;
    while (this.t.charCodeAt(p) === SP) p++;
    return this.t.charCodeAt(p);
  }

  /** Whether a plain scalar may start at `p` (in flow context, also not at a flow indicator). */
  private isPlainStart(p: number, flow: boolean): boolean {
    const c = this.t.charCodeAt(p);
    if (p >= this.n || c === NL || c === SP) return false;
    if (c === DASH || c === COLON) {
      // `-1`, `::1`: an indicator followed by a character a plain scalar may hold starts one.
      const next = this.t.charCodeAt(p + 1);
      return !this.isBlankOrEnd(p + 1) && !(flow && isFlowIndicator(next));
    }
    return !indicators.has(c);
  }

  /** Whether the plain text at `p` is an implicit key: a `: ` or a final `:` before any comment on this line. */
  private lineHasKey(): boolean {
    return this.t.charCodeAt(this.plainEnd(false)) === COLON;
  }

  /**
   * Where a plain scalar from `p` ends: at a line break, a comment's `#`, a `:` before a space or
   * line break (then it was a key), and in flow context at a flow indicator or a `:` before one.
   */
  private plainEnd(flow: boolean): number {
    const t = this.t;
    const n = this.n;
    const stops = flow ? flowStops : blockStops;
    for (let i = this.p; i < n; i++) {
      const c = t.charCodeAt(i);
      if (c >= 128 || stops[c] === 0) continue;
      if (c === HASH) {
        if (t.charCodeAt(i - 1) === SP) return i;
      } else if (c === COLON) {
        const next = t.charCodeAt(i + 1);
        if (i + 1 >= n || next === SP || next === NL || (flow && isFlowIndicator(next))) return i;
      } else return i;
    }
    return n;
  }

  /** A block mapping key at `p` and its `:`; leaves `p` after the `:`. */
  private blockKey(): string {
    const t = this.t;
    let key: string;
    const c = t.charCodeAt(this.p);
    if (c === DQUOTE || c === SQUOTE) {
      key = this.quoted();
      while (t.charCodeAt(this.p) === SP) this.p++;
      if (t.charCodeAt(this.p) !== COLON || !this.isBlankOrEnd(this.p + 1)) throw notMine;
    } else {
      if (!this.isPlainStart(this.p, false)) throw notMine;
      const i = this.plainEnd(false);
      if (t.charCodeAt(i) !== COLON) throw notMine; // no `:` on the line: not a mapping entry
      key = t.slice(this.p, i).trimEnd();
      // A key that is not a string (`1:`, `null:`, `true:`) becomes a different JS key; `yaml` decides those.
      if (resolvePlain(key) !== key) throw notMine;
      this.p = i;
    }
    if (key.length > maxKeyLength || key === "__proto__" || key === "<<") throw notMine;
    this.p++; // past ':'
    return key;
  }

  /** A plain scalar in block context, to the end of its line or a comment; leaves `p` there. */
  private plainBlockValue(): unknown {
    const t = this.t;
    if (!this.isPlainStart(this.p, false)) throw notMine;
    const start = this.p;
    const i = this.plainEnd(false);
    if (t.charCodeAt(i) === COLON) throw notMine; // a nested mapping on one line
    this.p = i;
    return resolvePlain(t.slice(start, i).trimEnd());
  }

  /** A one-line double- or single-quoted scalar; leaves `p` after the closing quote. */
  private quoted(): string {
    const t = this.t;
    const q = t.charCodeAt(this.p);
    let out = "";
    let from = this.p + 1;
    for (let i = from; ; i++) {
      if (i >= this.n) throw notMine;
      const c = t.charCodeAt(i);
      if (c === NL) throw notMine; // multi-line quoted scalars fold lines: `yaml`'s
      if (q === SQUOTE) {
        if (c !== SQUOTE) continue;
        if (t.charCodeAt(i + 1) === SQUOTE) {
          out += t.slice(from, i + 1);
          from = i + 2;
          i++;
          continue;
        }
      } else if (c === BACKSLASH) {
        out += t.slice(from, i);
        const [s, len] = this.escape(i);
        out += s;
        i += len - 1;
        from = i + 1;
        continue;
      } else if (c !== DQUOTE) continue;
      out += t.slice(from, i);
      this.p = i + 1;
      return out;
    }
  }

  /** The escape at `i` (a backslash) in a double-quoted scalar: its text and its length. */
  private escape(i: number): [string, number] {
    const e = this.t[i + 1];
    if (e !== undefined && hasOwn(simpleEscapes, e)) return [simpleEscapes[e]!, 2];
    const hexLength = e === "x" ? 2 : e === "u" ? 4 : 0;
    if (hexLength === 0) throw notMine; // the rarer YAML escapes (\e, \N, \L, \P, \_, \U...)
    const hex = this.t.slice(i + 2, i + 2 + hexLength);
    if (!new RegExp(`^[0-9a-fA-F]{${hexLength}}$`).test(hex)) throw notMine;
    return [String.fromCodePoint(parseInt(hex, 16)), 2 + hexLength];
  }

  /**
   * A flow mapping or sequence at `p`, inside a block collection at `parentIndent`: its later
   * lines must be indented more than that. Leaves `p` after the closing bracket.
   */
  private flowCollection(parentIndent: number): unknown {
    this.enter();
    const t = this.t;
    if (t.charCodeAt(this.p) === LBRACKET) {
      const seq: unknown[] = [];
      const offsets: number[] | undefined = this.offsets ? [] : undefined;
      if (offsets) this.offsets?.set(seq, offsets);
      this.p++;
      for (;;) {
        this.flowSpace(parentIndent);
        if (t.charCodeAt(this.p) === RBRACKET) {
          this.p++;
          return this.leave(seq);
        }
        offsets?.push(this.p);
        seq.push(this.flowNode(parentIndent));
        this.flowSpace(parentIndent);
        const c = t.charCodeAt(this.p);
        this.p++;
        if (c === RBRACKET) return this.leave(seq);
        if (c !== COMMA) throw notMine; // `[a: b]` and the like
      }
    }
    const map: Record<string, unknown> = {};
    const offsets: Record<string, number> | undefined = this.offsets ? {} : undefined;
    if (offsets) this.offsets?.set(map, offsets);
    this.p++;
    for (;;) {
      this.flowSpace(parentIndent);
      const c = t.charCodeAt(this.p);
      if (c === RBRACE) {
        this.p++;
        return this.leave(map);
      }
      let key: string;
      if (c === DQUOTE || c === SQUOTE) {
        key = this.quoted();
        while (t.charCodeAt(this.p) === SP) this.p++;
        if (t.charCodeAt(this.p) !== COLON) throw notMine;
      } else {
        const plain = this.plainFlow();
        // Only string keys, and only `key: value` (a `:` then a space or line break).
        if (typeof plain !== "string" || t.charCodeAt(this.p) !== COLON || !this.isBlankOrEnd(this.p + 1)) throw notMine;
        key = plain;
      }
      if (key.length > maxKeyLength || key === "__proto__" || key === "<<" || map[key] !== undefined) throw notMine;
      this.p++; // past ':'
      this.flowSpace(parentIndent);
      const v = t.charCodeAt(this.p);
      if (v === COMMA || v === RBRACE) throw notMine; // an empty value
      if (offsets) offsets[key] = this.p;
      map[key] = this.flowNode(parentIndent);
      this.flowSpace(parentIndent);
      const end = t.charCodeAt(this.p);
      this.p++;
      if (end === RBRACE) return this.leave(map);
      if (end !== COMMA) throw notMine;
    }
  }

  private flowNode(parentIndent: number): unknown {
    const c = this.t.charCodeAt(this.p);
    if (c === LBRACE || c === LBRACKET) return this.flowCollection(parentIndent);
    if (c === DQUOTE || c === SQUOTE) return this.quoted();
    const v = this.plainFlow();
    if (this.t.charCodeAt(this.p) === COLON) throw notMine; // an implicit key inside a flow sequence or a value
    return v;
  }

  /** A plain scalar in flow context, to a flow indicator, `: `, a comment or the end of the line; `p` is left there. */
  private plainFlow(): unknown {
    const t = this.t;
    if (!this.isPlainStart(this.p, true)) throw notMine;
    const start = this.p;
    const i = this.plainEnd(true);
    const text = t.slice(start, i).trimEnd();
    this.p = start + text.length;
    return resolvePlain(text);
  }

  /** Spaces, comments and line breaks between flow tokens; every new line must be indented past `parentIndent`. */
  private flowSpace(parentIndent: number): void {
    const t = this.t;
    for (;;) {
      const c = t.charCodeAt(this.p);
      if (c === SP) this.p++;
      else if (c === HASH) {
        if (t.charCodeAt(this.p - 1) !== SP && this.p !== this.lineStart) throw notMine;
        const nl = t.indexOf("\n", this.p);
        if (nl === -1) throw notMine; // the text ends inside the collection
        this.p = nl;
      } else if (c === NL) {
        this.p++;
        this.lineStart = this.p;
        let q = this.p;
        while (t.charCodeAt(q) === SP) q++;
        const next = t.charCodeAt(q);
        if (q < this.n && next !== NL && next !== HASH) {
          if (q - this.lineStart <= parentIndent) throw notMine;
          this.checkMarker(q);
        }
        this.p = q;
      } else if (this.p >= this.n) throw notMine;
      else return;
    }
  }
}
