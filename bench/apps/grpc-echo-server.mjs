// Peer baseline for the rpc bench: a @grpc/grpc-js unary echo service with
// raw-bytes (de)serialisers, so only gRPC's own overhead is measured. Prints its port.
import grpc from '@grpc/grpc-js';

const identity = (b) => b;
const service = { echo: { path: '/bench.Echo/Echo', requestStream: false, responseStream: false, requestSerialize: identity, requestDeserialize: identity, responseSerialize: identity, responseDeserialize: identity } };
const server = new grpc.Server();
server.addService(service, { echo: (call, callback) => callback(null, call.request) });
server.bindAsync('127.0.0.1:0', grpc.ServerCredentials.createInsecure(), (error, port) => {
  if (error) throw error;
  process.stdout.write(`${port}\n`);
});
