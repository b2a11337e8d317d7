//! Edits of the `[[application]]` tree on the file's `toml_edit` document.
//!
//! Only the edited table changes: a value that does not change keeps its bytes (trailing
//! comment included), a replaced value keeps the decoration around it, a new table copies the
//! indentation of its siblings, and a deleted table takes with it exactly its header, its keys
//! and the comments directly above its header (which toml_edit attaches to the header).

use toml_edit::{ArrayOfTables, Decor, DocumentMut, Item, Key, Table, Value};

use super::{ConfigEdit, DeviceSpec, DeviceUpdate, EditError, EditSubject, FieldProblem};
use crate::config::schema::{AppConfig, CommandConfig, MetricConfig};

const APPLICATION: &str = "application";
const DEVICE: &str = "device";
const READ_METRIC: &str = "read_metric";
const COMMAND: &str = "command";

/// Applies `edit` to `doc` (the config file's document). `live` is the configuration the
/// gateway runs with (the environment overlay included): ids are checked against it as well as
/// against the file.
pub fn apply(doc: &mut DocumentMut, live: &AppConfig, edit: &ConfigEdit) -> Result<(), EditError> {
    apply_to_main_file(doc, live, edit).map_err(|err| match err {
        // Not in the file at all: discovered from ChirpStack.
        EditError::NotFound { subject, .. }
            if edit
                .target()
                .1
                .is_some_and(|device| live.discovered.contains(device)) =>
        {
            let device = edit.target().1.unwrap_or_default();
            EditError::UnsupportedLayout(format!(
                "device {device:?} is discovered from ChirpStack, not written in the \
                 configuration file, so there is no {} to edit; write the device in the file \
                 ([[application.device]] with this device_id) to refine it: the file wins",
                subject.as_str()
            ))
        }
        // Configured, but not in this file: in one the main file includes.
        EditError::NotFound { subject, id }
            if super::included::configured(live, edit, subject, &id) =>
        {
            EditError::UnsupportedLayout(format!(
                "{} {id:?} is written in a file the configuration includes (include = [...]); \
                 the console edits the main file only: edit that file by hand",
                subject.as_str()
            ))
        }
        other => other,
    })
}

fn apply_to_main_file(
    doc: &mut DocumentMut,
    live: &AppConfig,
    edit: &ConfigEdit,
) -> Result<(), EditError> {
    match edit {
        ConfigEdit::CreateApplication {
            application_id,
            application_name,
        } => create_application(doc, live, application_id, application_name),
        ConfigEdit::UpdateApplication {
            application_id,
            application_name,
        } => {
            let app = application_mut(doc, application_id)?;
            set_field(
                app,
                "application_name",
                Some(Value::from(application_name.as_str())),
                None,
            );
            Ok(())
        }
        ConfigEdit::DeleteApplication { application_id } => delete_application(doc, application_id),
        ConfigEdit::CreateDevice {
            application_id,
            device,
        } => create_device(doc, live, application_id, device),
        ConfigEdit::UpdateDevice {
            application_id,
            device_id,
            device,
        } => update_device(doc, application_id, device_id, device),
        ConfigEdit::DeleteDevice {
            application_id,
            device_id,
        } => {
            let app = application_mut(doc, application_id)?;
            let devices = array_mut(app, DEVICE, "device")?
                .ok_or_else(|| not_found(EditSubject::Device, device_id))?;
            let index = index_of(devices, "device_id", device_id)
                .ok_or_else(|| not_found(EditSubject::Device, device_id))?;
            remove_table(devices, index);
            drop_if_empty(app, DEVICE);
            Ok(())
        }
        ConfigEdit::CreateCommand {
            application_id,
            device_id,
            command,
        } => create_command(doc, application_id, device_id, command),
        ConfigEdit::UpdateCommand {
            application_id,
            device_id,
            command_name,
            command,
        } => {
            if &command.command_name != command_name {
                return Err(EditError::Immutable {
                    field: "command_name".into(),
                });
            }
            let device = device_mut(doc, application_id, device_id)?;
            let commands = array_mut(device, COMMAND, "command")?
                .ok_or_else(|| not_found(EditSubject::Command, command_name))?;
            let table = commands
                .iter_mut()
                .find(|t| str_of(t, "command_name") == Some(command_name.as_str()))
                .ok_or_else(|| not_found(EditSubject::Command, command_name))?;
            check_plain(table, "command")?;
            update_fields(table, &command_fields(command));
            Ok(())
        }
        ConfigEdit::DeleteCommand {
            application_id,
            device_id,
            command_name,
        } => {
            let device = device_mut(doc, application_id, device_id)?;
            let commands = array_mut(device, COMMAND, "command")?
                .ok_or_else(|| not_found(EditSubject::Command, command_name))?;
            let index = index_of(commands, "command_name", command_name)
                .ok_or_else(|| not_found(EditSubject::Command, command_name))?;
            remove_table(commands, index);
            drop_if_empty(device, COMMAND);
            Ok(())
        }
    }
}

fn create_application(
    doc: &mut DocumentMut,
    live: &AppConfig,
    application_id: &str,
    application_name: &str,
) -> Result<(), EditError> {
    let in_file = applications(doc)?
        .is_some_and(|apps| index_of(apps, "application_id", application_id).is_some());
    if in_file
        || live
            .applications
            .iter()
            .any(|a| a.application_id == application_id)
    {
        return Err(conflict(format!(
            "application_id {application_id:?} is already configured"
        )));
    }
    let indent = indent_for(doc, 0);
    let table = new_table(
        &[
            field("application_name", Some(Value::from(application_name))),
            field("application_id", Some(Value::from(application_id))),
        ],
        &indent,
    );
    match doc.get_mut(APPLICATION) {
        None => {
            let mut apps = ArrayOfTables::new();
            apps.push(table);
            doc.insert(APPLICATION, Item::ArrayOfTables(apps));
        }
        Some(Item::ArrayOfTables(apps)) => apps.push(table),
        Some(_) => return Err(layout("the application list")),
    }
    Ok(())
}

fn delete_application(doc: &mut DocumentMut, application_id: &str) -> Result<(), EditError> {
    let apps = applications_mut(doc)?
        .ok_or_else(|| not_found(EditSubject::Application, application_id))?;
    let index = index_of(apps, "application_id", application_id)
        .ok_or_else(|| not_found(EditSubject::Application, application_id))?;
    if apps.len() == 1 {
        return Err(conflict(format!(
            "application {application_id:?} is the only one; create another application first"
        )));
    }
    let has_devices = apps
        .get(index)
        .and_then(|t| t.get(DEVICE))
        .is_some_and(|devices| match devices {
            Item::ArrayOfTables(devices) => !devices.is_empty(),
            _ => true,
        });
    if has_devices {
        return Err(conflict(format!(
            "application {application_id:?} still has devices; delete them first"
        )));
    }
    remove_table(apps, index);
    Ok(())
}

fn create_device(
    doc: &mut DocumentMut,
    live: &AppConfig,
    application_id: &str,
    device: &DeviceSpec,
) -> Result<(), EditError> {
    let id = device.device_id.as_str();
    let in_file = match applications(doc)? {
        Some(apps) => apps.iter().any(|app| match app.get(DEVICE) {
            Some(Item::ArrayOfTables(devices)) => index_of(devices, "device_id", id).is_some(),
            _ => false,
        }),
        None => false,
    };
    // A device only discovered may be written in the file: that is how an operator refines it.
    let configured = live
        .devices()
        .any(|(_, d)| d.device_id == id && !live.discovered.contains(id));
    if in_file || configured {
        return Err(conflict(format!("device_id {id:?} is already configured")));
    }
    let mut names = std::collections::HashSet::new();
    if let Some(dup) = device
        .command
        .iter()
        .find(|c| !names.insert(c.command_name.as_str()))
    {
        return Err(conflict(format!(
            "command_name {:?} is given twice",
            dup.command_name
        )));
    }
    let stale = threshold_value(device.stale_threshold_seconds, "stale_threshold_seconds")?;
    let device_indent = indent_for(doc, 1);
    let child_indent = indent_for(doc, 2);
    let app = application_mut(doc, application_id)?;
    let mut table = new_table(
        &[
            field(
                "device_name",
                Some(Value::from(device.device_name.as_str())),
            ),
            field("device_id", Some(Value::from(id))),
            field("stale_threshold_seconds", stale),
        ],
        &device_indent,
    );
    if !device.read_metric.is_empty() {
        let mut metrics = ArrayOfTables::new();
        for metric in &device.read_metric {
            metrics.push(new_table(&metric_fields(metric), &child_indent));
        }
        table.insert(READ_METRIC, Item::ArrayOfTables(metrics));
    }
    if !device.command.is_empty() {
        let mut commands = ArrayOfTables::new();
        for command in &device.command {
            commands.push(new_table(&command_fields(command), &child_indent));
        }
        table.insert(COMMAND, Item::ArrayOfTables(commands));
    }
    match app.get_mut(DEVICE) {
        None => {
            let mut devices = ArrayOfTables::new();
            devices.push(table);
            app.insert(DEVICE, Item::ArrayOfTables(devices));
        }
        Some(Item::ArrayOfTables(devices)) => devices.push(table),
        Some(_) => return Err(layout("the device list")),
    }
    Ok(())
}

fn update_device(
    doc: &mut DocumentMut,
    application_id: &str,
    device_id: &str,
    update: &DeviceUpdate,
) -> Result<(), EditError> {
    let stale = threshold_value(update.stale_threshold_seconds, "stale_threshold_seconds")?;
    let child_indent = indent_for(doc, 2);
    let device = device_mut(doc, application_id, device_id)?;
    set_field(
        device,
        "device_name",
        Some(Value::from(update.device_name.as_str())),
        None,
    );
    set_field(device, "stale_threshold_seconds", stale, None);
    let wanted: Vec<Vec<Field>> = update.read_metric.iter().map(metric_fields).collect();
    if wanted.is_empty() {
        array_mut(device, READ_METRIC, "metric")?;
        device.remove(READ_METRIC);
        return Ok(());
    }
    match array_mut(device, READ_METRIC, "metric")? {
        Some(metrics) => {
            for table in metrics.iter() {
                check_plain(table, "metric")?;
            }
            reconcile(metrics, &wanted, "metric_name", &child_indent);
        }
        None => {
            let mut metrics = ArrayOfTables::new();
            for fields in &wanted {
                metrics.push(new_table(fields, &child_indent));
            }
            device.insert(READ_METRIC, Item::ArrayOfTables(metrics));
        }
    }
    Ok(())
}

fn create_command(
    doc: &mut DocumentMut,
    application_id: &str,
    device_id: &str,
    command: &CommandConfig,
) -> Result<(), EditError> {
    let child_indent = indent_for(doc, 2);
    let device = device_mut(doc, application_id, device_id)?;
    let table = new_table(&command_fields(command), &child_indent);
    match array_mut(device, COMMAND, "command")? {
        Some(commands) => {
            if index_of(commands, "command_name", &command.command_name).is_some() {
                return Err(conflict(format!(
                    "command_name {:?} is already configured on device {device_id:?}",
                    command.command_name
                )));
            }
            commands.push(table);
        }
        None => {
            let mut commands = ArrayOfTables::new();
            commands.push(table);
            device.insert(COMMAND, Item::ArrayOfTables(commands));
        }
    }
    Ok(())
}

/// Makes `tables` hold `wanted`, in that order: a table whose `name_key` matches keeps its
/// bytes where its values do not change; the others are replaced, added or removed.
fn reconcile(tables: &mut ArrayOfTables, wanted: &[Vec<Field>], name_key: &str, indent: &Indent) {
    let old: Vec<Table> = std::mem::take(tables).into_iter().collect();
    let name_of = |fields: &[Field]| {
        fields
            .iter()
            .find(|f| f.key == name_key)
            .and_then(|f| f.value.as_ref())
            .and_then(|v| v.as_str().map(str::to_string))
    };
    // Tables render in the order they were read (toml_edit keeps each header's position), so
    // matching by name only keeps the requested order when the matched tables stay in order;
    // otherwise the existing tables are reused in place, one per wanted entry.
    let mut matched: Vec<Option<usize>> = Vec::with_capacity(wanted.len());
    let mut used = vec![false; old.len()];
    for fields in wanted {
        let found = name_of(fields).and_then(|name| {
            old.iter()
                .enumerate()
                .position(|(i, t)| !used[i] && str_of(t, name_key) == Some(name.as_str()))
        });
        if let Some(i) = found {
            used[i] = true;
        }
        matched.push(found);
    }
    let in_order = matched
        .iter()
        .flatten()
        .collect::<Vec<_>>()
        .windows(2)
        .all(|w| w[0] < w[1]);
    let mut old: Vec<Option<Table>> = old.into_iter().map(Some).collect();
    for (k, fields) in wanted.iter().enumerate() {
        let reused = if in_order {
            matched[k].and_then(|i| old.get_mut(i).and_then(Option::take))
        } else {
            old.get_mut(k).and_then(Option::take)
        };
        match reused {
            Some(mut table) => {
                update_fields(&mut table, fields);
                tables.push(table);
            }
            None => tables.push(new_table(fields, indent)),
        }
    }
}

/// One key of a table as the editor writes it: `None` means absent; `default` is the value an
/// absent key stands for (an absent key equal to it stays absent).
struct Field {
    key: &'static str,
    value: Option<Value>,
    default: Option<Value>,
}

fn field(key: &'static str, value: Option<Value>) -> Field {
    Field {
        key,
        value,
        default: None,
    }
}

fn metric_fields(metric: &MetricConfig) -> Vec<Field> {
    vec![
        field(
            "metric_name",
            Some(Value::from(metric.metric_name.as_str())),
        ),
        field(
            "chirpstack_metric_name",
            Some(Value::from(metric.chirpstack_metric_name.as_str())),
        ),
        field("metric_type", Some(type_value(metric.metric_type))),
        field(
            "metric_unit",
            metric.metric_unit.as_deref().map(Value::from),
        ),
    ]
}

fn command_fields(command: &CommandConfig) -> Vec<Field> {
    vec![
        field(
            "command_name",
            Some(Value::from(command.command_name.as_str())),
        ),
        field(
            "command_id",
            Some(Value::from(i64::from(command.command_id))),
        ),
        Field {
            key: "command_confirmed",
            value: Some(Value::from(command.command_confirmed)),
            default: Some(Value::from(false)),
        },
        field(
            "command_port",
            Some(Value::from(i64::from(command.command_port))),
        ),
        Field {
            key: "command_type",
            value: Some(type_value(command.command_type)),
            default: Some(Value::from("Int")),
        },
        field("command_min", command.command_min.map(number_value)),
        field("command_max", command.command_max.map(number_value)),
    ]
}

/// A whole number as an integer (`0`, as a hand-written file has it), anything else as a float.
fn number_value(n: f64) -> Value {
    if n.fract() == 0.0 && n.abs() < 1e15 {
        Value::from(n as i64)
    } else {
        Value::from(n)
    }
}

fn type_value(metric_type: crate::model::MetricType) -> Value {
    use crate::model::MetricType;
    Value::from(match metric_type {
        MetricType::Float => "Float",
        MetricType::Int => "Int",
        MetricType::Bool => "Bool",
        MetricType::String => "String",
    })
}

fn threshold_value(seconds: Option<u64>, key: &str) -> Result<Option<Value>, EditError> {
    seconds
        .map(|s| {
            i64::try_from(s)
                .map(Value::from)
                .map_err(|_| EditError::Validation {
                    problems: vec![FieldProblem {
                        field: key.into(),
                        message: "must be between 1 and 86400".into(),
                    }],
                })
        })
        .transpose()
}

/// Sets each field of an existing table, keeping the bytes of what does not change.
fn update_fields(table: &mut Table, fields: &[Field]) {
    for f in fields {
        set_field(table, f.key, f.value.clone(), f.default.as_ref());
    }
}

/// Sets (`Some`) or removes (`None`) `key`. An unchanged value keeps its bytes; a changed one
/// keeps the key's comments and the spacing and trailing comment around the value.
fn set_field(table: &mut Table, key: &str, value: Option<Value>, default: Option<&Value>) {
    let indent = key_indent(table);
    match (table.get_mut(key), value) {
        (Some(Item::Value(old)), Some(mut new)) => {
            if !same_value(old, &new) {
                *new.decor_mut() = old.decor().clone();
                *old = new;
            }
        }
        (Some(item), Some(new)) => *item = Item::Value(new),
        (None, Some(new)) => {
            if default.is_some_and(|d| same_value(d, &new)) {
                return;
            }
            let key = Key::new(key).with_leaf_decor(Decor::new(indent, " "));
            table.insert_formatted(&key, Item::Value(new));
        }
        (Some(_), None) => {
            table.remove(key);
        }
        (None, None) => {}
    }
}

/// Equal as configuration values (`0` and `0.0` are; `"float"` and `"Float"` name one type).
fn same_value(old: &Value, new: &Value) -> bool {
    match (old, new) {
        (Value::String(a), Value::String(b)) => {
            a.value() == b.value()
                || (is_type_name(a.value()) && a.value().eq_ignore_ascii_case(b.value()))
        }
        (Value::Integer(a), Value::Integer(b)) => a.value() == b.value(),
        (Value::Float(a), Value::Float(b)) => a.value() == b.value(),
        (Value::Integer(a), Value::Float(b)) | (Value::Float(b), Value::Integer(a)) => {
            *a.value() as f64 == *b.value()
        }
        (Value::Boolean(a), Value::Boolean(b)) => a.value() == b.value(),
        _ => false,
    }
}

fn is_type_name(text: &str) -> bool {
    ["float", "int", "bool", "string"]
        .iter()
        .any(|t| t.eq_ignore_ascii_case(text))
}

/// The indentation of a table's header and of its keys.
#[derive(Debug, Clone)]
struct Indent {
    header: String,
    key: String,
}

/// The indentation tables at `depth` (0 application, 1 device, 2 metric or command) have in
/// this file, or the example file's (0, 2 and 4 spaces) when there are none.
fn indent_for(doc: &DocumentMut, depth: usize) -> Indent {
    fn walk(table: &Table, depth: usize, found: &mut Option<Indent>) {
        for (_, item) in table.iter() {
            let Item::ArrayOfTables(tables) = item else {
                continue;
            };
            if depth == 0 {
                if let Some(t) = tables.iter().last() {
                    *found = Some(Indent {
                        header: last_line_blank(t.decor().prefix().and_then(|r| r.as_str())),
                        key: key_indent(t),
                    });
                }
            } else {
                for t in tables.iter() {
                    walk(t, depth - 1, found);
                }
            }
        }
    }
    let mut found = None;
    if let Some(Item::ArrayOfTables(apps)) = doc.get(APPLICATION) {
        if depth == 0 {
            if let Some(t) = apps.iter().last() {
                found = Some(Indent {
                    header: last_line_blank(t.decor().prefix().and_then(|r| r.as_str())),
                    key: key_indent(t),
                });
            }
        } else {
            for app in apps.iter() {
                walk(app, depth - 1, &mut found);
            }
        }
    }
    found.unwrap_or_else(|| {
        let spaces = " ".repeat(2 * depth);
        Indent {
            header: spaces.clone(),
            key: spaces,
        }
    })
}

/// The indentation of the keys of `table` (the whitespace its last key starts its line with).
fn key_indent(table: &Table) -> String {
    table
        .iter()
        .filter(|(_, item)| item.is_value())
        .last()
        .and_then(|(key, _)| table.key(key))
        .map(|key| last_line_blank(key.leaf_decor().prefix().and_then(|r| r.as_str())))
        .unwrap_or_default()
}

/// What follows the last newline of `text`, when it is only spaces and tabs.
fn last_line_blank(text: Option<&str>) -> String {
    let last = text.unwrap_or("").rsplit('\n').next().unwrap_or("");
    if last.chars().all(|c| c == ' ' || c == '\t') {
        last.to_string()
    } else {
        String::new()
    }
}

/// A new table: a blank line, then its header and keys indented like its siblings.
fn new_table(fields: &[Field], indent: &Indent) -> Table {
    let mut table = Table::new();
    table.decor_mut().set_prefix(format!("\n{}", indent.header));
    for f in fields {
        if let Some(value) = &f.value {
            let key = Key::new(f.key).with_leaf_decor(Decor::new(indent.key.clone(), " "));
            table.insert_formatted(&key, Item::Value(value.clone()));
        }
    }
    table
}

fn applications(doc: &DocumentMut) -> Result<Option<&ArrayOfTables>, EditError> {
    match doc.get(APPLICATION) {
        None => Ok(None),
        Some(Item::ArrayOfTables(apps)) => Ok(Some(apps)),
        Some(_) => Err(layout("the application list")),
    }
}

fn applications_mut(doc: &mut DocumentMut) -> Result<Option<&mut ArrayOfTables>, EditError> {
    match doc.get_mut(APPLICATION) {
        None => Ok(None),
        Some(Item::ArrayOfTables(apps)) => Ok(Some(apps)),
        Some(_) => Err(layout("the application list")),
    }
}

fn application_mut<'a>(doc: &'a mut DocumentMut, id: &str) -> Result<&'a mut Table, EditError> {
    let app = applications_mut(doc)?
        .and_then(|apps| {
            apps.iter_mut()
                .find(|t| str_of(t, "application_id") == Some(id))
        })
        .ok_or_else(|| not_found(EditSubject::Application, id))?;
    check_plain(app, "application")?;
    Ok(app)
}

fn device_mut<'a>(
    doc: &'a mut DocumentMut,
    application_id: &str,
    device_id: &str,
) -> Result<&'a mut Table, EditError> {
    let app = application_mut(doc, application_id)?;
    let device = array_mut(app, DEVICE, "device")?
        .and_then(|devices| {
            devices
                .iter_mut()
                .find(|t| str_of(t, "device_id") == Some(device_id))
        })
        .ok_or_else(|| not_found(EditSubject::Device, device_id))?;
    check_plain(device, "device")?;
    // The console edits a device's own lists; with a template the device's metrics and
    // commands are the template's refined by its own, which a list edit cannot express.
    if let Some(template) = str_of(device, "template") {
        return Err(EditError::UnsupportedLayout(format!(
            "device {device_id:?} takes its metrics and commands from [[device_template]] \
             {template:?}; edit the template or the device in the configuration file by hand"
        )));
    }
    Ok(device)
}

/// The `[[...]]` list under `key`, `None` when absent; another layout is refused.
fn array_mut<'a>(
    table: &'a mut Table,
    key: &str,
    what: &str,
) -> Result<Option<&'a mut ArrayOfTables>, EditError> {
    match table.get_mut(key) {
        None => Ok(None),
        Some(Item::ArrayOfTables(tables)) => Ok(Some(tables)),
        Some(_) => Err(layout(&format!("the {what} list"))),
    }
}

/// Refuses a table written with dotted keys or inline tables: rewriting it in place could
/// change what it means.
fn check_plain(table: &Table, what: &str) -> Result<(), EditError> {
    let dotted = table
        .iter()
        .any(|(_, item)| matches!(item, Item::Table(_) | Item::Value(Value::InlineTable(_))));
    if dotted {
        return Err(layout(&format!("a {what} table")));
    }
    Ok(())
}

/// Removes one table of a list. The comment lines above the list's first table usually
/// describe the whole list (the example's `# [topology] ...` block), so when the first table
/// goes they stay above the new first one instead of going with it.
fn remove_table(tables: &mut ArrayOfTables, index: usize) {
    let leading = (index == 0 && tables.len() > 1)
        .then(|| tables.get(0).map(|t| prefix_of(t.decor())))
        .flatten()
        .filter(|prefix| prefix.contains('#'));
    tables.remove(index);
    if let (Some(leading), Some(next)) = (leading, tables.get_mut(0)) {
        let own = prefix_of(next.decor());
        let prefix = if own.trim().is_empty() {
            leading
        } else {
            format!("{leading}{own}")
        };
        next.decor_mut().set_prefix(prefix);
    }
}

fn prefix_of(decor: &Decor) -> String {
    decor
        .prefix()
        .and_then(|p| p.as_str())
        .unwrap_or_default()
        .to_string()
}

fn drop_if_empty(table: &mut Table, key: &str) {
    if matches!(table.get(key), Some(Item::ArrayOfTables(t)) if t.is_empty()) {
        table.remove(key);
    }
}

fn index_of(tables: &ArrayOfTables, key: &str, id: &str) -> Option<usize> {
    tables.iter().position(|t| str_of(t, key) == Some(id))
}

fn str_of<'a>(table: &'a Table, key: &str) -> Option<&'a str> {
    table.get(key)?.as_str()
}

fn not_found(subject: EditSubject, id: &str) -> EditError {
    EditError::NotFound {
        subject,
        id: id.to_string(),
    }
}

fn conflict(message: String) -> EditError {
    EditError::Conflict { message }
}

fn layout(what: &str) -> EditError {
    EditError::UnsupportedLayout(format!(
        "{what} is written in a layout the console does not rewrite (an inline array or table, \
         or dotted keys); edit the file by hand, or rewrite it with [[...]] tables as in \
         config/config.example.toml"
    ))
}
