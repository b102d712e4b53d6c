/** helloworld, hosted side: the Printer's rep lives here; exit 0 once every native greeted. */
import type { HostedApp } from '@ebbrt/hosted';
import { PrinterEbb, type PrinterRep } from './printer.js';

export async function main(app: HostedApp): Promise<number> {
  const printer = app.runtime.localRep(app.runtime.ref(PrinterEbb)) as PrinterRep;
  await printer.waitFor(app.natives.length);
  return 0;
}
