/**
 * Hosts that name "this machine" rather than one interface of it: loopback
 * and the wildcard addresses. A launcher and a VM native read them the same
 * way: inside a VM native "this machine" is the VM (an app's loopback or
 * wildcard listener binds the VM's interfaces), and a peer or frontend that
 * advertises one of them is, seen from the VM, on the host.
 */
const THIS_MACHINE = new Set(['127.0.0.1', 'localhost', '::1', '0.0.0.0', '::']);

/** Does `host` mean "this machine" (loopback or any address) rather than a particular interface? */
export function isThisMachine(host: string): boolean {
  return THIS_MACHINE.has(host);
}
