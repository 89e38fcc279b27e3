/**
 * Two directors on segment A (LAB_DIRECTORS=2): each its own VM, DIP, MAC and host key, and VRRP
 * between them works on the lab bridge. Proven with the keepalived Debian installs on them (not
 * enabled): with both running one VRRP instance, exactly one holds the VIP (without multicast
 * between them, each would take it); stopping it hands the VIP to the other.
 */
import { LAB_ADDRESSES, labExec, labExecOk, labHost, type LabHosts } from "../../lab";
import { arpRepliers, eventually } from "./helpers";
import { describeLab } from "./lab-suite";

const VRRP_VIP = "198.51.100.9";
const DIRECTORS = ["director", "director2"] as const;

function keepalivedConf(priority: number): string {
  return [
    "vrrp_instance lab_test {",
    "  state BACKUP",
    "  interface eth0",
    "  virtual_router_id 51",
    `  priority ${priority}`,
    "  advert_int 1",
    `  virtual_ipaddress { ${VRRP_VIP}/32 dev eth0 }`,
    "}",
    "",
  ].join("\n");
}

async function holders(): Promise<string[]> {
  const out: string[] = [];
  for (const d of DIRECTORS) if ((await labExecOk(d, `ip -o addr show dev eth0 to ${VRRP_VIP}`)).includes(VRRP_VIP)) out.push(d);
  return out;
}

describeLab(
  "two directors (LAB_DIRECTORS=2)",
  (lab) => {
    let hosts: LabHosts;
    beforeAll(() => {
      hosts = lab.hosts;
    });

    it("are two VMs with their own DIP, MAC and host key, in hosts.json like every host", async () => {
      expect(hosts.directors).toBe(2);
      const d1 = labHost("director", hosts);
      const d2 = labHost("director2", hosts);
      expect(d1).toMatchObject({ role: "director", address: LAB_ADDRESSES.director, namespace: null });
      expect(d2).toMatchObject({ role: "director", address: LAB_ADDRESSES.director2, prefix: 24, gateway: LAB_ADDRESSES.routerA, interface: "eth0", namespace: null });
      expect(d2.mac).not.toBe(d1.mac);
      expect(d2.hostKey).not.toBe(d1.hostKey);
      expect(Object.keys(hosts.vms).sort()).toEqual(["director", "director2", "rsvm1"]);
      for (const d of DIRECTORS) {
        expect((await labExecOk(d, "hostname")).trim()).toBe(d);
        expect(JSON.parse(await labExecOk(d, "ip -j link show dev eth0"))[0].address).toBe(labHost(d, hosts).mac);
        expect(await labExecOk(d, "modprobe ip_vs && ipvsadm -Ln")).toContain("IP Virtual Server");
      }
    }, 120_000);

    it("VRRP between them works on the lab bridge: one master holds the VIP, and the other takes over when it stops", async () => {
      try {
        await labExecOk("director", `cat > /etc/keepalived/keepalived.conf && systemctl start keepalived`, { input: keepalivedConf(150) });
        await labExecOk("director2", `cat > /etc/keepalived/keepalived.conf && systemctl start keepalived`, { input: keepalivedConf(100) });
        await eventually("one director to hold the VRRP VIP", async () => ((await holders()).length === 1 ? true : undefined), 30_000);
        // Give a director that missed the adverts time to claim it too: it must not.
        await new Promise((r) => setTimeout(r, 5000));
        expect(await holders()).toEqual(["director"]);
        const arp = await labExecOk("client", `arping -c 2 -W 0.3 -i eth0 ${VRRP_VIP}; true`);
        expect(new Set(arpRepliers(arp))).toEqual(new Set([labHost("director", hosts).mac]));

        await labExecOk("director", "systemctl stop keepalived");
        await eventually("director2 to take the VRRP VIP over", async () => ((await holders()).join() === "director2" ? true : undefined), 30_000);
        const after = await labExecOk("client", `arping -c 2 -W 0.3 -i eth0 ${VRRP_VIP}; true`);
        expect(new Set(arpRepliers(after))).toEqual(new Set([labHost("director2", hosts).mac]));
      } finally {
        for (const d of DIRECTORS) await labExec(d, "systemctl stop keepalived; rm -f /etc/keepalived/keepalived.conf");
      }
      expect(await holders()).toEqual([]);
    }, 120_000);
  },
  { directors: 2 },
);
