/**
 * `@ebbrt/native/image`: the native VM image builder. A separate entry so the
 * runtime (`@ebbrt/native`) never loads the builder or esbuild.
 */
export { buildImage, type ImageBuildOptions, type ImageBuildResult } from './build.js';
export { bundleNative, type BundleFile } from './bundle.js';
export { cpioArchive, cpioHeader, type CpioEntry } from './cpio.js';
export { ImageBuildError } from './errors.js';
export { initScript, powerButtonHandler, GUEST_NETWORK, APP_DIR, type InitScriptOptions } from './init.js';
export { moduleLoadOrder, moduleName, parseModulesDep, type ModulePlan } from './modules.js';
