/** Test kit for the invoker's tests: two namespaces' API keys and the rejection of a client call. */

export const ALPHA_KEY = '11111111-2222-3333-4444-555555555555:alphaSecretKey0123456789';
export const BETA_KEY = '66666666-7777-8888-9999-000000000000:betaSecretKey0123456789';

/** The rejection of `promise` (an `openwhisk` client call), which must reject. */
export async function failure(promise: Promise<unknown>): Promise<{ statusCode: number; error: any; message: string }> {
  try {
    await promise;
  } catch (error) {
    return error as { statusCode: number; error: any; message: string };
  }
  throw new Error('expected the request to fail');
}
