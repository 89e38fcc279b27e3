/** What the observe and apply scripts share: the PATH they run with, and the host state digest. */
import type { HostStateScope } from "../model/host-state";
import { assertInterface, assertManagedPath, assertSysctlKey, quote } from "./shell";

export const PATH = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin; export PATH";

/**
 * Sets `$lvsdr_state` to the SHA-256 of what a plan for the host depends on (`HostStateScope`):
 * each address on the scope's interfaces (interface, family, address/prefix: not lifetimes, which
 * count down), which of the files are links or there, and the /proc/sys values and files' text.
 * The observe script prints it and the apply script compares it: both render it here, so the two
 * hash the same bytes. Three processes (ip, grep, sha256sum): only a plan asks for it.
 */
export function stateDigestCommand(scope: HostStateScope): string {
  const interfaces = scope.interfaces.map((i) => quote(assertInterface(i))).join("|");
  const files = scope.files.map((f) => quote(assertManagedPath(f))).join(" ");
  const values = [...scope.sysctlKeys.map((k) => quote(`/proc/sys/${assertSysctlKey(k)}`)), files].filter(Boolean).join(" ");
  return [
    "lvsdr_state=$({",
    `  ip -o addr show 2>/dev/null | while read -r _ lvsdr_dev lvsdr_fam lvsdr_cidr _; do case "\${lvsdr_dev%%@*}" in ${interfaces || "''"}) echo "\${lvsdr_dev%%@*} $lvsdr_fam $lvsdr_cidr" ;; esac; done`,
    ...(files ? [`  for lvsdr_f in ${files}; do if [ -L "$lvsdr_f" ]; then echo "link $lvsdr_f"; elif [ -e "$lvsdr_f" ]; then echo "file $lvsdr_f"; fi; done`] : []),
    `  LC_ALL=C grep -s -H '' ${values || "/dev/null"} || :`,
    "} | sha256sum) && lvsdr_state=${lvsdr_state%% *}",
  ].join("\n");
}
