import { stepKinds } from "./steps";

describe("step kinds", () => {
  // Names say what a step does; the table must agree, so a new kind cannot slip past the question
  // `lvsdr apply` asks or the IPVS table check.
  it("takes something away exactly when it removes, restores, drains or stops", () => {
    for (const [op, kind] of Object.entries(stepKinds)) expect([op, kind.takesAway]).toEqual([op, /^(remove|restore|drain|stop)-/.test(op)]);
  });

  it("is an IPVS step exactly when ipvsadm adds, edits, drains or removes a service or destination", () => {
    for (const [op, kind] of Object.entries(stepKinds)) expect([op, kind.ipvs]).toEqual([op, /^(add|edit|drain|remove)-(service|destination)$/.test(op)]);
  });
});
