//! End-to-end tests: the real binaries and handlers against the AWS emulator.

mod alert;
mod audit;
mod catalog;
mod damage;
mod dumps;
mod files;
mod function;
mod gc;
mod harness_selftest;
mod infra;
mod memory;
mod operations;
mod plan;
mod redis;
mod retention;
mod support;
mod verify;
