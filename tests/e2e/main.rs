//! End-to-end tests: the real binaries and handlers against the AWS emulator.

mod files;
mod harness_selftest;
mod memory;
mod support;
