//! End-to-end tests: the real binaries and handlers against the AWS emulator.

mod harness_selftest;
