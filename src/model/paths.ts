/** Where the tool keeps its files on a host. Every path it writes is one of these. */
export const hostPaths = {
  sysctlConf: "/etc/sysctl.d/90-lvs-dr.conf",
  ipvsRules: "/etc/lvs-dr/ipvs.rules",
  bootScript: "/etc/lvs-dr/restore.sh",
  systemdUnit: "/etc/systemd/system/lvs-dr.service",
  systemdUnitLink: "/etc/systemd/system/multi-user.target.wants/lvs-dr.service",
  ownership: "/var/lib/lvs-dr/ownership.json",
  lockDir: "/run/lvs-dr",
  lock: "/run/lvs-dr/lock",
} as const;
