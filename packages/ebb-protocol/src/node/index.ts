/**
 * `@ebbrt/ebb-protocol/node`: the contracts between a launcher and a native
 * node (boot settings, the VM image manifest, which hosts mean "this
 * machine") and the command-line layer of every command. Light: it loads no
 * part of the protocol stack, so a native's boot and the image builder start fast.
 */
export {
  bootEnv,
  bootKernelParams,
  bootVariable,
  parseBootConfig,
  parseBootSecrets,
  parseKernelCmdline,
  BootConfigError,
  FW_CFG_SECRETS,
} from './boot-config.js';
export type { BootConfig, BootSecrets, BootSettings } from './boot-config.js';
export { checkImageManifest, readImageManifest, IMAGE_FORMAT, IMAGE_MANIFEST_FILE } from './image-manifest.js';
export type { ImageManifest } from './image-manifest.js';
export { isThisMachine } from './hosts.js';
export { flagHelp, parseFlags, UsageError } from './args.js';
export type { FlagSpec, Flags, ParsedArgs, ParseFlagsOptions } from './args.js';
