//! End-to-end tests: the real binaries and handlers against the AWS emulator.

mod catalog;
mod damage;
mod files;
mod function;
mod harness_selftest;
mod memory;
mod support;
