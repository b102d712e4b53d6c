// Native module of the rpc bench: defines the Echo Ebb; natives only serve.
import './echo-ebb.mjs';
export async function main() {}
