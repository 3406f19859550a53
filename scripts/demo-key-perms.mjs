#!/usr/bin/env node
// git does not keep file modes other than the executable bit, so a fresh clone has the
// shipped DEMO seeds at 0644 and the bridge would rightly refuse them. `npm ci` runs this
// (from "prepare") to set them to 0600. Only configs/keys/*.key (public demo seeds) are touched.
import { chmodSync, readdirSync } from 'node:fs'

const dir = new URL('../configs/keys/', import.meta.url)
for (const name of readdirSync(dir)) {
  if (name.endsWith('.key')) chmodSync(new URL(name, dir), 0o600)
}
