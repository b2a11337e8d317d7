//! End-to-end tests: the real actor tree in-process, and the real `opcgw` binary.

mod attack_certificates;
mod attack_commands;
mod attack_connections;
mod attack_sessions;
mod binary_config;
mod binary_lifecycle;
mod binary_metrics;
mod binary_opcua;
mod binary_reload;
mod control;
mod logs;
mod opcua;
mod opcua_python;
mod poller;
mod poller_handoff;
mod reload_edit;
mod storage;
mod supervision;
mod supervision_start;
mod support;
mod ua_client;
mod web;
mod web_browser;
mod web_certificates;
mod web_client;
mod web_config;
