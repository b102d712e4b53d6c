/** helloworld, native side: core 0 greets through the Printer, whose rep is on the frontend. */
import type { EbbRuntime } from '@ebbrt/native';
import { PrinterEbb } from './printer.js';

export async function main(rt: EbbRuntime): Promise<void> {
  await rt.ref(PrinterEbb).print(`${rt.address}: Hello World`);
}
