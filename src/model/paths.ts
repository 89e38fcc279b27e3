/** Where the tool keeps its files on a host. Every path it writes is one of these. */
export const hostPaths = {
  sysctlConf: "/etc/sysctl.d/90-lvs-dr.conf",
  ipvsRules: "/etc/lvs-dr/ipvs.rules",
  bootScript: "/etc/lvs-dr/restore.sh",
  systemdUnit: "/etc/systemd/system/lvs-dr.service",
  systemdUnitLink: "/etc/systemd/system/multi-user.target.wants/lvs-dr.service",
  ownership: "/var/lib/lvs-dr/ownership.json",
  /** keepalived's own configuration file, which its Debian unit and `keepalived` read by default. */
  keepalivedConf: "/etc/keepalived/keepalived.conf",
  /** A drop-in for keepalived's unit: it keeps its IPVS entries when it stops (see render/files.ts). */
  keepalivedDropIn: "/etc/systemd/system/keepalived.service.d/lvs-dr.conf",
  /** IPVS kernel settings: loaded by the boot script after ip_vs, which must exist first. */
  ipvsSysctlConf: "/etc/lvs-dr/ipvs-sysctl.conf",
  lockDir: "/run/lvs-dr",
  lock: "/run/lvs-dr/lock",
} as const;
