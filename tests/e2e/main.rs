//! End-to-end tests: the real binaries and handlers against the AWS emulator.

mod alert;
mod architecture;
mod audit;
mod catalog;
mod damage;
mod db_tools;
mod dumps;
mod failover;
mod files;
mod function;
mod gc;
mod harness_selftest;
mod infra;
mod integrity;
mod jobs;
mod memory;
mod operations;
mod pitr;
mod plan;
mod redis;
mod retention;
mod snapshot;
mod snapshot_ops;
mod status;
mod support;
mod verify;
