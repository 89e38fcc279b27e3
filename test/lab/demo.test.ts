/** The demo is the first thing users run (`npm run demo`): it must tell its story to the end. */
import { spawnSync } from "node:child_process";
import { resolve } from "node:path";
import { describeLab } from "./lab-suite";

const REPO = resolve(__dirname, "../..");

describeLab("npm run demo", () => {
  it("runs the whole story on the lab and exits 0", () => {
    // dist/ is what `npm run demo` runs; `npm test` builds it before the suites.
    const r = spawnSync(process.execPath, [resolve(REPO, "dist/demo/demo.js")], { cwd: REPO, encoding: "utf8", input: "", timeout: 600_000 });
    expect(r.stderr).toBe("");
    expect(r.status).toBe(0);
    const out = r.stdout;
    expect(out).toMatch(/^ {3}rs1: #+ \d+$/m);
    expect(out).toMatch(/^ {3}rs2: #+ \d+$/m);
    expect(out).toMatch(/^ {3}rs3: #+ \d+$/m);
    expect(out).toMatch(/^ {3}rsvm1: #+ \d+$/m);
    expect(out).toMatch(/^ {3}TCP {2}198\.51\.100\.5:80 +\d+ +[1-9]\d* +0 +\d+ +0$/m);
    expect(out).toMatch(/rs2 +changed +sysctl +net\/ipv4\/conf\/all\/arp_ignore +1 +0/);
    expect(out).toContain("(exit 2)");
    expect(out).toContain("no drift on 5 hosts");
    expect(out.split("\n").length).toBeLessThan(80);
  }, 600_000);
});
