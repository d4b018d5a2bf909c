#!/usr/bin/env node
// Entry point for `npx balancer`: Node runs the TypeScript sources directly.
import '../src/main.ts'
