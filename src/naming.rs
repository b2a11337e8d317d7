//! The string identifiers of the gateway's OPC UA nodes, and the names they reserve.
//!
//! Configuration validation (which names an operator may choose) and the OPC UA address space
//! (which NodeIds exist) must agree on these, so both use this module; NodeId strings are
//! formatted nowhere else. Every identifier lives in the gateway namespace (docs/opcua.md):
//!
//! | node | identifier |
//! |---|---|
//! | application folder | `<application_id>` |
//! | device folder | `<device_id>` |
//! | metric variable | `<device_id>/<metric_name>` |
//! | command variable | `<device_id>/<command_name>` |
//! | command status | `<device_id>/<command_name>/Status` |
//! | engineering units | `<metric NodeId>/EngineeringUnits` |
//! | gateway folder and members | `Gateway`, `Gateway/<name>`, `Gateway/Health/<role>` |
//!
//! The separator is `/`, so no configured id or name may contain it, and `Gateway` (with
//! everything below it) is taken by the gateway itself.

/// The identifier and browse name of the gateway's own folder.
pub const GATEWAY_FOLDER: &str = "Gateway";
/// The folder below [`GATEWAY_FOLDER`] with one variable per actor.
pub const HEALTH_FOLDER: &str = "Health";
/// The browse name of a command's status variable.
pub const COMMAND_STATUS: &str = "Status";
/// The browse name of a metric's unit property.
pub const ENGINEERING_UNITS: &str = "EngineeringUnits";
/// What joins the parts of an identifier; configured ids and names must not contain it.
pub const SEPARATOR: char = '/';

/// The variable of a metric.
pub fn metric_node_id(device_id: &str, metric: &str) -> String {
    // Not `format!`: built for every value a device sends, where the formatting machinery
    // showed in profiles.
    let mut id = String::with_capacity(device_id.len() + SEPARATOR.len_utf8() + metric.len());
    id.push_str(device_id);
    id.push(SEPARATOR);
    id.push_str(metric);
    id
}

/// The device id and metric name of a metric variable's identifier (the inverse of
/// [`metric_node_id`]: a configured device id never contains the separator, so the first one
/// ends it).
pub fn split_metric_node_id(node_id: &str) -> Option<(&str, &str)> {
    node_id.split_once(SEPARATOR)
}

/// The variable of a command (metrics and commands of a device share one name space).
pub fn command_node_id(device_id: &str, command: &str) -> String {
    metric_node_id(device_id, command)
}

/// The `Status` child of a command variable.
pub fn command_status_node_id(device_id: &str, command: &str) -> String {
    format!("{device_id}{SEPARATOR}{command}{SEPARATOR}{COMMAND_STATUS}")
}

/// The `EngineeringUnits` property of a metric variable.
pub fn engineering_units_node_id(metric_node_id: &str) -> String {
    format!("{metric_node_id}{SEPARATOR}{ENGINEERING_UNITS}")
}

/// A member of the gateway folder (`Gateway/<name>`).
pub fn gateway_node_id(name: &str) -> String {
    format!("{GATEWAY_FOLDER}{SEPARATOR}{name}")
}

/// The health variable of one actor (`Gateway/Health/<role>`).
pub fn health_node_id(role: &str) -> String {
    gateway_node_id(&format!("{HEALTH_FOLDER}{SEPARATOR}{role}"))
}

/// Whether `id` is the gateway folder or below it: no application or device may take it.
pub fn is_reserved(id: &str) -> bool {
    id.strip_prefix(GATEWAY_FOLDER)
        .is_some_and(|rest| rest.is_empty() || rest.starts_with(SEPARATOR))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_metric_identifier_splits_back_into_its_device_and_metric() {
        for (device, metric) in [("0011223344556677", "temperature"), ("d", "a.b-c")] {
            let id = metric_node_id(device, metric);
            assert_eq!(split_metric_node_id(&id), Some((device, metric)));
        }
        assert_eq!(split_metric_node_id("Gateway"), None);
    }

    #[test]
    fn identifiers_have_the_documented_shapes() {
        assert_eq!(metric_node_id("dev-a", "Temp"), "dev-a/Temp");
        assert_eq!(command_node_id("dev-a", "Valve"), "dev-a/Valve");
        assert_eq!(
            command_status_node_id("dev-a", "Valve"),
            "dev-a/Valve/Status"
        );
        assert_eq!(
            engineering_units_node_id("dev-a/Temp"),
            "dev-a/Temp/EngineeringUnits"
        );
        assert_eq!(gateway_node_id("GoodValues"), "Gateway/GoodValues");
        assert_eq!(gateway_node_id(HEALTH_FOLDER), "Gateway/Health");
        assert_eq!(health_node_id("poller"), "Gateway/Health/poller");
    }

    #[test]
    fn the_gateway_folder_and_its_members_are_reserved_and_nothing_else() {
        assert!(is_reserved("Gateway"));
        assert!(is_reserved("Gateway/anything"));
        assert!(!is_reserved("Gateways"));
        assert!(!is_reserved("gateway"));
        assert!(!is_reserved("my-Gateway"));
    }
}
