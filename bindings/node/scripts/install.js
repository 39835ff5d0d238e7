#!/usr/bin/env node
// Builds the native addon from source with cargo — the one build of the package:
// * as the install script (`npm install ./bindings/node` from a project): when no addon for
//   this platform is present; inside the package itself (`npm ci` there) it does nothing;
// * as `npm run build` (`--force`): always, in release — the same cargo command, flags and
//   target directory as the install, so whichever runs second finds everything built.
// Needs only cargo (Rust) and crates.io. (`npm run build:debug` is napi's build, which also
// regenerates index.js and index.d.ts while working on the binding.)
//
// Environment: RTM2_NODE_PROFILE=debug|release (default release), RTM2_NODE_SKIP_BUILD=1.
'use strict'

const { spawnSync } = require('node:child_process')
const fs = require('node:fs')
const path = require('node:path')

const pkgDir = path.resolve(__dirname, '..')

function platformSuffix() {
  const { platform, arch } = process
  if (platform === 'linux') {
    const musl = !process.report?.getReport?.().header?.glibcVersionRuntime
    return `linux-${arch}-${musl ? 'musl' : 'gnu'}`
  }
  if (platform === 'win32') return `win32-${arch}-msvc`
  return `${platform}-${arch}`
}

function main(force) {
  if (process.env.RTM2_NODE_SKIP_BUILD && !force) return
  const initCwd = process.env.INIT_CWD && path.resolve(process.env.INIT_CWD)
  if (initCwd === pkgDir && !force) {
    console.log('rtm2: run `npm run build` (or `npm run build:debug`) to build the native addon')
    return
  }
  const target = path.join(pkgDir, `rtm2.${platformSuffix()}.node`)
  if (fs.existsSync(target) && !force) return
  const profile = process.env.RTM2_NODE_PROFILE === 'debug' ? 'debug' : 'release'
  const args = ['build', '--manifest-path', path.join(pkgDir, 'Cargo.toml'), '--lib', '--message-format=json-render-diagnostics']
  if (profile === 'release') args.push('--release')
  console.log(`rtm2: building the native addon from source (cargo ${profile}); this takes a few minutes`)
  const r = spawnSync('cargo', args, { cwd: pkgDir, stdio: ['ignore', 'pipe', 'inherit'], maxBuffer: 1 << 28 })
  if (r.error) {
    console.error(`rtm2: could not run cargo (${r.error.message}); install Rust from https://rustup.rs`)
    process.exit(1)
  }
  if (r.status !== 0) process.exit(r.status ?? 1)
  let lib = null
  for (const line of r.stdout.toString().split('\n')) {
    if (!line.startsWith('{')) continue
    const msg = JSON.parse(line)
    if (msg.reason === 'compiler-artifact' && msg.target?.name === 'rtm2_node') {
      lib = msg.filenames.find((f) => /\.(so|dylib|dll)$/.test(f)) ?? lib
    }
  }
  if (!lib) {
    console.error('rtm2: cargo did not report the addon library')
    process.exit(1)
  }
  fs.copyFileSync(lib, target)
  console.log(`rtm2: built ${path.basename(target)}`)
}

main(process.argv.includes('--force'))
