// The Ebb the rpc bench calls: `echo` returns its first argument.
import { defineEbb } from '@ebbrt/ebb-protocol';

export class EchoRep {
  echo(n, _s, _b) {
    return n;
  }
}

export const EchoEbb = defineEbb({ name: 'BenchEcho', policy: 'multicore', methods: ['echo'], create: () => new EchoRep() });
