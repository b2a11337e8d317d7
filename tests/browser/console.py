#!/usr/bin/env python3
"""Drives the web console in a real headless Chromium, as an operator would.

Runs unchanged against the gateway (`--base-url http://127.0.0.1:<port>/`) or the mock
(`--start-mock`). Scenario: a page without a session goes to sign-in; a wrong password is refused;
sign in; a value change arrives live on the devices page; the dashboard shows a verdict; a 24 h
chart opens on a device page and extends live; a command is sent (a double click makes one command) and its state
changes live; the events page lists the sign-in; with --config-file, the configuration page
(settings with class and source, an env-locked device read-only, an application and a device
with two metrics and a command added, field errors inline from the form and from the gateway, a
rename, ambient drift -> "Reload from file" -> the change applied, deletes confirmed); with
--certificates, a rejected client certificate trusted; the pages fit a phone; sign out and the
API refuses the browser. With --checkpoints, the script stops at the points where a test checks
the gateway from outside (an OPC UA browse, a client connecting): it prints
"CHECKPOINT <name> <json>" and waits for "GO" on stdin. No CSP violation or script error may appear in the browser console.
Screenshots go to the directory given with --screenshots.

Needs selenium (tests/python/requirements.txt) and Debian's chromium + chromium-driver
(`make browser-deps`).
"""

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import urljoin

from selenium import webdriver
from selenium.common.exceptions import StaleElementReferenceException, TimeoutException, WebDriverException
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.action_chains import ActionChains
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import Select, WebDriverWait

HERE = Path(__file__).resolve().parent
# Console messages that are expected: the sign-in page probes GET /api/session (401 when signed
# out), the refusal check after sign-out, and the EventSource closed at sign-out.
EXPECTED_CONSOLE = re.compile(r"Failed to load resource: the server responded with a status of 401|/api/events|/api/session")


class Failure(Exception):
    pass


class Console:
    def __init__(self, args):
        self.args = args
        self.base = args.base_url if args.base_url.endswith("/") else args.base_url + "/"
        self.shots = Path(args.screenshots)
        self.shots.mkdir(parents=True, exist_ok=True)
        self.console_problems = []
        self.driver = self.start_browser()

    def start_browser(self):
        options = webdriver.ChromeOptions()
        for flag in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu", "--window-size=1280,900", "--lang=en-GB"):
            options.add_argument(flag)
        chromium = shutil.which("chromium") or "/usr/bin/chromium"
        if os.path.exists(chromium):
            options.binary_location = chromium
        options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
        driver_path = shutil.which("chromedriver") or "/usr/bin/chromedriver"
        # Service(path) uses the Debian chromedriver; selenium then downloads nothing.
        service = Service(driver_path) if os.path.exists(driver_path) else Service()
        return webdriver.Chrome(service=service, options=options)

    # -- helpers ------------------------------------------------------------------------------

    def url(self, page):
        return urljoin(self.base, page)

    def wait(self, what, condition, timeout=None):
        try:
            # An element of a table the page re-rendered between two polls is stale: poll again.
            return WebDriverWait(self.driver, timeout or self.args.timeout, poll_frequency=0.2, ignored_exceptions=[StaleElementReferenceException]).until(lambda d: condition())
        except TimeoutException:
            self.shot(f"failed-{re.sub(r'[^a-z0-9]+', '-', what.lower())}")
            raise Failure(f"timed out after {timeout or self.args.timeout} s waiting for: {what} (page {self.driver.current_url})") from None

    def js(self, script, *args):
        return self.driver.execute_script(script, *args)

    def fetch(self, path):
        """(status, body) of a GET from inside the page, with the page's cookies."""
        return self.driver.execute_async_script(
            """const done = arguments[arguments.length - 1];
               fetch(arguments[0], {headers: {'Accept': 'application/json', 'X-Requested-With': 'XMLHttpRequest'}, cache: 'no-store'})
                 .then(async r => done([r.status, await r.text()])).catch(e => done([0, String(e)]));""",
            path,
        )

    def api(self, path):
        status, body = self.fetch(path)
        if status != 200:
            raise Failure(f"GET {path} answered {status}: {body[:200]}")
        return json.loads(body)

    def shot(self, name):
        path = self.shots / f"{name}.png"
        self.driver.save_screenshot(str(path))
        return path

    def collect_console(self, page, expected=None):
        """Keeps the console's problems; `expected` (a regex) also lets through a refusal a step provoked."""
        try:
            entries = self.driver.get_log("browser")
        except WebDriverException:
            return
        for entry in entries:
            message = entry.get("message", "")
            if expected and re.search(expected, message):
                continue
            if entry.get("level") in ("SEVERE", "WARNING") and not EXPECTED_CONSOLE.search(message):
                self.console_problems.append(f"{page}: {entry.get('level')} {message}")

    def open(self, page):
        self.collect_console(self.driver.current_url)
        self.driver.get(self.url(page))

    def step(self, text):
        print(f"  - {text}", flush=True)

    def checkpoint(self, name, **facts):
        """With --checkpoints, lets the driving test check the gateway from outside (an OPC UA
        browse, a client connecting) at this point: prints "CHECKPOINT <name> <json>" and waits
        for "GO" on stdin."""
        if not self.args.checkpoints:
            return
        print(f"CHECKPOINT {name} {json.dumps(facts)}", flush=True)
        answer = sys.stdin.readline().strip()
        if answer != "GO":
            raise Failure(f"checkpoint {name}: the driving test answered {answer!r}, not GO")

    # -- the scenario -------------------------------------------------------------------------

    def sign_in_is_required(self):
        self.step("a page without a session goes to the sign-in page")
        self.open("devices.html")
        self.wait("the sign-in page", lambda: "login.html" in self.driver.current_url and self.driver.find_elements(By.ID, "login-form"))
        self.shot("01-sign-in")

    def submit_login(self, user, password):
        for field, value in (("user", user), ("password", password)):
            box = self.driver.find_element(By.ID, field)
            box.clear()
            box.send_keys(value)
        self.driver.find_element(By.ID, "sign-in").click()

    def wrong_password_is_refused(self):
        self.step("a wrong password is refused")
        self.submit_login(self.args.user, self.args.password + "-wrong")
        message = self.wait("the sign-in error", lambda: next((m for m in self.driver.find_elements(By.ID, "login-message") if m.is_displayed() and m.text), None))
        if "invalid" not in message.text.lower() and "too many" not in message.text.lower():
            raise Failure(f"unexpected sign-in error text: {message.text!r}")
        if "login.html" not in self.driver.current_url:
            raise Failure("a wrong password left the sign-in page")

    def sign_in(self):
        self.step("sign in, back to the page asked for")
        self.submit_login(self.args.user, self.args.password)
        self.wait("the devices page after sign-in", lambda: "devices.html" in self.driver.current_url and self.driver.find_elements(By.CSS_SELECTOR, "#devices tr[data-device-id]"), timeout=self.args.timeout + 10)
        if not self.js("return sessionStorage.getItem('opcgw.csrf_token')"):
            raise Failure("the CSRF token was not kept after sign-in")

    def value_arrives_live(self):
        self.step("a value change arrives live on the devices page")
        self.wait("the live connection", lambda: self.js("return document.getElementById('conn')?.dataset.state") == "live")
        snapshot = """return Object.fromEntries([...document.querySelectorAll('.metric[data-device]')]
                        .map(c => [c.dataset.device + '/' + c.dataset.metric, c.querySelector('.metric-value').textContent]));"""
        before = self.js(snapshot)
        if not before:
            raise Failure("the devices page shows no metric")
        self.shot("02-devices")
        changed = self.wait(
            "a metric value to change without reloading",
            lambda: [k for k, v in self.js(snapshot).items() if before.get(k) != v],
            timeout=self.args.live_timeout,
        )
        self.step(f"    changed live: {', '.join(changed[:3])}")
        self.shot("03-devices-live")

    def dashboard(self):
        self.step("the dashboard shows a health verdict")
        self.open("index.html")
        self.wait("the verdict", lambda: self.js("return document.getElementById('verdict')?.dataset.verdict") in ("ok", "degraded", "down"))
        self.wait("the actors table", lambda: self.driver.find_elements(By.CSS_SELECTOR, "#actors tr[data-role]"))
        self.shot("04-dashboard")

    def chart_24h(self):
        self.step("a 24 h chart opens on a device page and extends live")
        answer = self.api("/api/devices")
        devices = [d for a in answer["applications"] for d in a["devices"]]
        device = next((d for d in devices if any(m["metric_type"] in ("Float", "Int") and m["value"] is not None for m in d["metrics"])), None)
        if device is None:
            raise Failure("no device has a numeric metric with a value to chart")
        self.open(f"device.html?id={device['device_id']}")
        self.wait("the metrics table", lambda: self.driver.find_elements(By.CSS_SELECTOR, "#metrics tr[data-metric]"))
        self.wait("the 1 h charts", lambda: self.driver.find_elements(By.CSS_SELECTOR, ".chart-card[data-state='ready'] .uplot canvas"))
        self.driver.find_element(By.CSS_SELECTOR, "#presets button[data-preset='24h']").click()
        cards = self.wait(
            "a 24 h chart drawn",
            lambda: self.driver.find_elements(By.CSS_SELECTOR, ".chart-card[data-window='86400'][data-state='ready'] .uplot canvas"),
        )
        points = self.js("return [...document.querySelectorAll('.chart-card')].map(c => c.dataset.metric + ': ' + c.dataset.points + (c.dataset.downsampled === 'true' ? ' buckets' : ' points'))")
        self.step(f"    {len(cards)} chart(s): {', '.join(points)}")
        if self.driver.find_element(By.CSS_SELECTOR, "#presets button[data-preset='24h']").get_attribute("aria-pressed") != "true":
            raise Failure("the 24 h preset is not shown as chosen")
        self.wait(
            "the 24 h chart to extend with a live value",
            lambda: self.driver.find_elements(By.CSS_SELECTOR, ".chart-card[data-window='86400'][data-state='ready']:not([data-live-points='0'])"),
            timeout=self.args.live_timeout,
        )
        self.shot("05-device-24h")

    def command(self):
        self.step("send a command (a double click makes one) and see its state change")
        answer = self.api("/api/devices")
        devices = [d for a in answer["applications"] for d in a["devices"] if d.get("commands")]
        if not devices:
            raise Failure("no device has a command to send")
        device = devices[0]
        command = next((c for c in device["commands"] if c["command_type"] in ("Float", "Int")), device["commands"][0])
        self.open(f"commands.html?device={device['device_id']}")
        self.wait("the command form", lambda: self.driver.find_elements(By.CSS_SELECTOR, "#command-name option"))
        Select(self.driver.find_element(By.ID, "command-name")).select_by_value(command["command_name"])
        known = set(self.js("return [...document.querySelectorAll('#queue tr[data-command-id]')].map(r => r.dataset.commandId)"))
        invalid = self.invalid_value(command)
        if invalid is not None:
            field = self.driver.find_element(By.ID, "command-value")
            field.clear()
            field.send_keys(invalid)
            self.driver.find_element(By.ID, "send").click()
            error = self.wait("the form to refuse a wrong value", lambda: next((e for e in self.driver.find_elements(By.ID, "value-error") if e.is_displayed() and e.text), None))
            self.step(f"    {invalid!r} refused by the form: {error.text}")
            if self.driver.find_element(By.ID, "command-value").get_attribute("aria-invalid") != "true":
                raise Failure("the refused value's field is not marked invalid")
        value = self.valid_value(command)
        field = self.driver.find_element(By.ID, "command-value")
        if field.tag_name == "select":
            Select(field).select_by_value(value)
        else:
            field.clear()
            field.send_keys(value)
        ActionChains(self.driver).double_click(self.driver.find_element(By.ID, "send")).perform()
        command_id = self.wait("the command accepted", lambda: self.js("return document.getElementById('send-message')?.dataset.commandId"))
        self.step(f"    command #{command_id}: {command['command_name']} = {value}")
        self.wait("the command in the queue", lambda: self.driver.find_elements(By.CSS_SELECTOR, f"#queue tr[data-command-id='{command_id}']"))
        state = self.wait(
            "the command's state to change live",
            lambda: (s := self.js(f"return document.querySelector(\"#queue tr[data-command-id='{command_id}']\")?.dataset.state")) not in (None, "queued") and s,
            timeout=self.args.live_timeout,
        )
        self.step(f"    state now {state}")
        time.sleep(1)  # a second downlink, if one were sent, would show up as a second new row by now
        new = set(self.js("return [...document.querySelectorAll('#queue tr[data-command-id]')].map(r => r.dataset.commandId)")) - known
        if len(new) != 1:
            raise Failure(f"a double click made {len(new)} commands: {sorted(new)}")
        self.shot("06-commands")

    @staticmethod
    def invalid_value(command):
        """A value the form must refuse before sending: out of range, or not of the type."""
        kind, high = command["command_type"], command.get("command_max")
        if kind in ("Float", "Int"):
            return str(int(high) + 1) if high is not None else "12abc"
        return None  # Bool is a choice; any text is a String

    @staticmethod
    def valid_value(command):
        kind, low, high = command["command_type"], command.get("command_min"), command.get("command_max")
        if kind in ("Float", "Int"):
            if low is not None and high is not None:
                middle = (low + high) / 2
                return str(int(middle)) if kind == "Int" else str(round(middle, 2))
            return str(int(low) if low is not None else 1)
        if kind == "Bool":
            return "true"
        return "hello"

    def events(self):
        self.step("the events page lists the sign-in and live events")
        self.open("events.html")
        self.wait("the audit events", lambda: self.driver.find_elements(By.CSS_SELECTOR, "#audit tr[data-event='web_login']"))
        self.wait("a live event in the log", lambda: self.driver.find_elements(By.CSS_SELECTOR, "#live-log li"), timeout=self.args.live_timeout)
        self.shot("07-events")

    # -- configuration editing ------------------------------------------------------------------

    def type_into(self, field_id, text):
        box = self.driver.find_element(By.ID, field_id)
        box.clear()
        box.send_keys(text)
        return box

    def shown_text(self, element_id):
        """The text of a displayed element, or None."""
        return next((e.text for e in self.driver.find_elements(By.ID, element_id) if e.is_displayed() and e.text), None)

    def dialog_open(self, dialog_id):
        return self.js(f"return document.getElementById('{dialog_id}')?.open === true")

    def click(self, css, what):
        """Clicks the element `css` once it is there; a table the page re-renders meanwhile (a
        `config` event refetches it) makes the element found stale: find it again."""
        def attempt():
            try:
                found = self.driver.find_elements(By.CSS_SELECTOR, css)
                if not found:
                    return False
                found[0].click()
                return True
            except StaleElementReferenceException:
                return False
        self.wait(what, attempt)

    def submit_editor(self):
        self.driver.find_element(By.ID, "editor-submit").click()

    def mutate(self, method, path, body=None, silent=False):
        """(status, body) of a change made from the page's session but not through its forms."""
        return self.driver.execute_async_script(
            """const [method, path, body, silent, done] = arguments;
               const headers = {'Accept': 'application/json', 'Content-Type': 'application/json', 'X-Requested-With': 'XMLHttpRequest',
                                'X-CSRF-Token': sessionStorage.getItem('opcgw.csrf_token') || ''};
               if (silent) headers['X-Mock-Silent'] = '1';
               fetch(path, {method, headers, body: body === null ? undefined : JSON.stringify(body), cache: 'no-store'})
                 .then(async r => done([r.status, await r.text()])).catch(e => done([0, String(e)]));""",
            method, path, body, silent,
        )

    def configuration(self):
        self.step("configuration: the settings view shows each knob's class and source")
        self.open("config.html")
        self.wait("the configuration tree", lambda: self.js("return document.getElementById('tree-view')?.dataset.ready") == "true")
        self.wait("the applications", lambda: self.driver.find_elements(By.CSS_SELECTOR, "#applications tr[data-application-id]"))
        if self.js("return document.getElementById('editing-status').dataset.enabled") != "true":
            raise Failure(f"configuration editing is off: {self.shown_text('editing-status')}")
        self.driver.find_element(By.ID, "tab-settings").click()
        rows = self.wait("the settings", lambda: self.driver.find_elements(By.CSS_SELECTOR, "#settings tr[data-key]"))
        classes = {r.get_attribute("data-class") for r in rows}
        if not classes <= {"hot", "restart_required"} or "hot" not in classes:
            raise Failure(f"unexpected setting classes {classes}")
        for row in rows:
            if row.get_attribute("data-source") in ("env", "secret_file") and not row.find_elements(By.CSS_SELECTOR, "td[data-label='Source'] .mono"):
                raise Failure(f"{row.get_attribute('data-key')} comes from {row.get_attribute('data-source')} but the page does not say which")
        self.step(f"    {len(rows)} settings, sources {sorted({r.get_attribute('data-source') for r in rows})}")
        self.shot("11-config-settings")
        self.driver.find_element(By.ID, "tab-tree").click()

        config = self.api("/api/config")
        for lock in [lock for lock in config.get("env_locked", []) if lock.get("device_id")][:1]:
            self.step(f"    {lock['device_id']} is read-only, set by {lock['variable']}")
            self.open(f"config.html?app={lock['application_id']}")
            row = self.wait("the locked device", lambda: self.driver.find_elements(By.CSS_SELECTOR, f"#devices tr[data-device-id='{lock['device_id']}']"))[0]
            if lock["variable"] not in row.text or row.find_element(By.CSS_SELECTOR, "button[data-action='delete-device']").is_enabled():
                raise Failure(f"the env-locked device {lock['device_id']} is editable or does not name {lock['variable']}")
            self.open("config.html")
            self.wait("the applications", lambda: self.driver.find_elements(By.CSS_SELECTOR, "#applications tr[data-application-id]"))

        app_id, device_id = "tank-farm", "tank-01"
        self.step("add an application")
        self.driver.find_element(By.ID, "add-application").click()
        self.wait("the editor", lambda: self.dialog_open("editor"))
        if "topology" not in (self.shown_text("editor-class") or ""):
            raise Failure("the editor does not show the change's class before applying")
        self.type_into("f-application_id", app_id)
        self.type_into("f-application_name", "Tank farm")
        self.submit_editor()
        self.wait("the new application", lambda: not self.dialog_open("editor") and self.driver.find_elements(By.CSS_SELECTOR, f"#applications tr[data-application-id='{app_id}']"))
        self.wait("its devices panel", lambda: self.driver.find_element(By.ID, "devices-panel").is_displayed())

        self.step("add a device with two metrics; a '/' in its id is refused as it is typed")
        self.driver.find_element(By.ID, "add-device").click()
        self.wait("the device editor", lambda: self.dialog_open("editor"))
        self.type_into("f-device_id", "tank/01")
        error = self.wait("the inline error on device_id", lambda: self.shown_text("f-device_id-error"))
        if "/" not in error or self.driver.find_element(By.ID, "f-device_id").get_attribute("aria-invalid") != "true":
            raise Failure(f"the '/' in device_id is not marked: {error!r}")
        self.shot("12-config-field-error")
        self.type_into("f-device_id", device_id)
        self.wait("the error gone", lambda: self.shown_text("f-device_id-error") is None)
        self.type_into("f-device_name", "Tank 1")
        self.type_into("f-read_metric-0-metric_name", "level")
        self.type_into("f-read_metric-0-chirpstack_metric_name", "object.level")
        self.type_into("f-read_metric-0-metric_unit", "m")
        self.driver.find_element(By.ID, "add-metric").click()
        self.type_into("f-read_metric-1-metric_name", "temperature")
        self.type_into("f-read_metric-1-chirpstack_metric_name", "object.temperature")
        self.type_into("f-read_metric-1-metric_unit", "°C")
        self.submit_editor()
        self.wait("the new device's page", lambda: not self.dialog_open("editor") and self.js("return document.getElementById('device-panel').dataset.deviceId") == device_id)
        metrics = self.wait("its two metrics", lambda: len(self.driver.find_elements(By.CSS_SELECTOR, "#metrics tr[data-metric]")) == 2)
        if not metrics:
            raise Failure("the device does not show two metrics")
        self.checkpoint("device_added", application_id=app_id, device_id=device_id, device_name="Tank 1", metrics=["level", "temperature"])

        self.step("add a command; a port out of 1-223 is refused as it is typed")
        self.driver.find_element(By.ID, "add-command").click()
        self.wait("the command editor", lambda: self.dialog_open("editor"))
        self.type_into("f-command_name", "valve")
        self.type_into("f-command_port", "300")
        error = self.wait("the inline error on command_port", lambda: self.shown_text("f-command_port-error"))
        self.step(f"    command_port 300: {error}")
        self.type_into("f-command_port", "20")
        Select(self.driver.find_element(By.ID, "f-command_type")).select_by_value("Bool")
        self.driver.find_element(By.ID, "f-command_confirmed").click()
        self.submit_editor()
        self.wait("the command in the device", lambda: not self.dialog_open("editor") and self.driver.find_elements(By.CSS_SELECTOR, "#commands tr[data-command='valve']"))
        self.wait("the device in the live view", lambda: device_id in {d["device_id"] for a in self.api("/api/devices")["applications"] for d in a["devices"]})

        self.step("the gateway's field-level refusal is shown next to the field")
        self.driver.find_element(By.ID, "add-device").click()
        self.wait("the device editor", lambda: self.dialog_open("editor"))
        self.type_into("f-device_id", "tank-02")
        self.type_into("f-device_name", "Tank 2")
        self.type_into("f-read_metric-0-metric_name", "level")
        self.type_into("f-read_metric-0-chirpstack_metric_name", "object.level")
        # Another console takes the name meanwhile (the mock tells this page nothing about it).
        status, body = self.mutate("POST", f"/api/applications/{app_id}/devices", {"device_id": "tank-99", "device_name": "Tank 2", "read_metric": []}, silent=True)
        if status != 201:
            raise Failure(f"creating the competing device answered {status}: {body[:200]}")
        self.submit_editor()
        error = self.wait("the refusal next to device_name", lambda: self.shown_text("f-device_name-error"))
        if "twice" not in error:
            raise Failure(f"unexpected device_name error {error!r}")
        if self.args.start_mock and "refused" not in (self.shown_text("editor-message") or ""):
            raise Failure("the refusal did not come from the gateway")
        self.step(f"    device_name: {error}")
        self.shot("13-config-server-error")
        self.collect_console(self.driver.current_url, expected=r"/devices - Failed to load resource: the server responded with a status of (409|422)")
        self.driver.find_element(By.ID, "editor-cancel").click()
        status, body = self.mutate("DELETE", f"/api/applications/{app_id}/devices/tank-99")
        if status != 204:
            raise Failure(f"deleting the competing device answered {status}: {body[:200]}")

        self.step("rename the device")
        self.open(f"config.html?app={app_id}&device={device_id}")
        self.wait("the device", lambda: self.js("return document.getElementById('device-panel').dataset.deviceId") == device_id and self.driver.find_element(By.ID, "edit-device").is_enabled())
        self.driver.find_element(By.ID, "edit-device").click()
        self.wait("the device editor", lambda: self.dialog_open("editor"))
        if self.driver.find_element(By.ID, "f-device_id").get_attribute("readonly") is None:
            raise Failure("the device id is editable in a rename")
        self.type_into("f-device_name", "Tank 1 north")
        self.submit_editor()
        self.wait("the new name", lambda: not self.dialog_open("editor") and "Tank 1 north" in self.driver.find_element(By.ID, "device-title").text)
        self.shot("14-config-device")
        self.checkpoint("device_renamed", application_id=app_id, device_id=device_id, device_name="Tank 1 north")

        self.step("the file changes on disk: the edit is refused, 'Reload from file' applies it")
        with open(self.args.config_file, "a", encoding="utf-8") as f:
            f.write("\n# changed by hand (tests/browser/console.py)\n")
        self.driver.find_element(By.ID, "edit-device").click()
        self.wait("the device editor", lambda: self.dialog_open("editor"))
        self.type_into("f-device_name", "Tank 1 north side")
        self.submit_editor()
        self.wait("the drift banner", lambda: self.driver.find_elements(By.ID, "reload-from-file") and self.driver.find_element(By.ID, "editor-drift").is_displayed())
        self.shot("15-config-drift")
        self.collect_console(self.driver.current_url, expected=rf"/devices/{device_id} - Failed to load resource: the server responded with a status of 409")
        self.click("#reload-from-file", "the reload-from-file button")
        self.wait("the change applied after the reload", lambda: not self.dialog_open("editor") and "Tank 1 north side" in self.driver.find_element(By.ID, "device-title").text)
        self.checkpoint("device_reloaded", application_id=app_id, device_id=device_id, device_name="Tank 1 north side")

        self.step("an open device page follows a rename made elsewhere (the config event)")
        self.open(f"device.html?id={device_id}")
        self.wait("the device page", lambda: "Tank 1 north side" in self.driver.find_element(By.ID, "device-title").text)
        current = self.api(f"/api/applications/{app_id}/devices/{device_id}")
        status, body = self.mutate("PUT", f"/api/applications/{app_id}/devices/{device_id}", {"device_name": "Tank 1 south", "read_metric": current["read_metric"]})
        if status != 200:
            raise Failure(f"renaming from another console answered {status}: {body[:200]}")
        self.wait("the new name on the open device page", lambda: "Tank 1 south" in self.driver.find_element(By.ID, "device-title").text)
        self.open(f"config.html?app={app_id}&device={device_id}")
        self.wait("the device", lambda: self.js("return document.getElementById('device-panel').dataset.deviceId") == device_id and self.driver.find_element(By.ID, "delete-device").is_enabled())

        self.step("delete the device (the confirmation names what goes) and the application")
        self.driver.find_element(By.ID, "delete-device").click()
        self.wait("the confirmation", lambda: self.dialog_open("confirm"))
        text = self.driver.find_element(By.ID, "confirm-text").text
        if "OPC UA variables disappear" not in text or device_id not in text:
            raise Failure(f"the confirmation does not say what goes: {text!r}")
        self.driver.find_element(By.ID, "confirm-ok").click()
        self.wait("the device gone", lambda: not self.dialog_open("confirm") and not self.driver.find_elements(By.CSS_SELECTOR, f"#devices tr[data-device-id='{device_id}']") and not self.driver.find_element(By.ID, "device-panel").is_displayed())
        self.checkpoint("device_deleted", application_id=app_id, device_id=device_id)
        self.click(f"button[data-action='delete-application'][data-id='{app_id}']", "the application's delete button")
        self.wait("the confirmation", lambda: self.dialog_open("confirm"))
        self.driver.find_element(By.ID, "confirm-ok").click()
        self.wait("the application gone", lambda: not self.dialog_open("confirm") and not self.driver.find_elements(By.CSS_SELECTOR, f"#applications tr[data-application-id='{app_id}']"))
        self.open("config.html")
        self.wait("the applications", lambda: self.driver.find_elements(By.CSS_SELECTOR, "#applications tr[data-application-id]"))
        self.shot("16-config")

    def certificates(self):
        self.step("client certificates: trust a rejected one")
        self.open("certificates.html")
        self.wait("the certificates", lambda: self.js("return document.getElementById('rejected')?.dataset.ready") == "true")
        for row in self.driver.find_elements(By.CSS_SELECTOR, "tr[data-expired='true']"):
            if not row.find_elements(By.CSS_SELECTOR, ".c-expired"):
                raise Failure("an expired certificate is not marked")
        candidates = self.driver.find_elements(By.CSS_SELECTOR, "#rejected tr[data-thumbprint][data-expired='false']")
        if not candidates:
            raise Failure("no rejected, unexpired client certificate to trust")
        thumbprint = candidates[0].get_attribute("data-thumbprint")
        self.shot("17-certificates")
        self.click(f"#rejected tr[data-thumbprint='{thumbprint}'] button[data-action='trust']", "the trust button")
        self.wait("the certificate trusted", lambda: self.driver.find_elements(By.CSS_SELECTOR, f"#trusted tr[data-thumbprint='{thumbprint}']"))
        self.step(f"    {thumbprint} trusted: {self.shown_text('certificates-message')}")
        self.checkpoint("certificate_trusted", thumbprint=thumbprint)
        self.click(f"#trusted tr[data-thumbprint='{thumbprint}'] button[data-action='delete']", "the delete button of the trusted certificate")
        self.wait("the delete confirmation", lambda: self.dialog_open("confirm"))
        self.driver.find_element(By.ID, "confirm-cancel").click()
        self.wait("the confirmation closed, the certificate kept", lambda: not self.dialog_open("confirm") and self.driver.find_elements(By.CSS_SELECTOR, f"#trusted tr[data-thumbprint='{thumbprint}']"))

    def phone(self):
        self.step("on a phone, the devices table does not scroll sideways")
        self.driver.set_window_size(390, 844)
        try:
            pages = [("devices.html", "08-devices-phone"), ("index.html", "09-dashboard-phone")]
            if self.args.config_file:
                pages.append(("config.html?app=a1f3c2d4-0000-4000-8000-000000000002&device=pump-07" if self.args.start_mock else "config.html", "18-config-phone"))
            if self.args.certificates:
                pages.append(("certificates.html", "19-certificates-phone"))
            for page, name in pages:
                self.open(page)
                self.wait(f"{page} loaded", lambda: self.js("return document.getElementById('conn')?.dataset.state") == "live")
                wide = self.js("return document.documentElement.scrollWidth - document.documentElement.clientWidth")
                if wide > 0:
                    self.shot(f"failed-{name}")
                    raise Failure(f"{page} scrolls sideways by {wide} px on a 390 px wide screen")
                self.shot(name)
        finally:
            self.driver.set_window_size(1280, 900)

    def sign_out(self):
        self.step("sign out; the pages and the API refuse the browser")
        self.open("devices.html")
        self.wait("the sign-out button", lambda: self.driver.find_elements(By.ID, "sign-out"))
        self.driver.find_element(By.ID, "sign-out").click()
        self.wait("the sign-in page after sign-out", lambda: "login.html" in self.driver.current_url and self.driver.find_elements(By.ID, "login-form"))
        status, _ = self.fetch("/api/devices")
        if status != 401:
            raise Failure(f"after sign-out GET /api/devices answered {status}, not 401")
        self.open("devices.html")
        self.wait("the sign-in page for a page after sign-out", lambda: "login.html" in self.driver.current_url)
        self.shot("10-signed-out")

    def run(self):
        try:
            scenarios = [self.sign_in_is_required, self.wrong_password_is_refused, self.sign_in, self.value_arrives_live, self.dashboard, self.chart_24h, self.command, self.events]
            if self.args.config_file:
                scenarios.append(self.configuration)
            if self.args.certificates:
                scenarios.append(self.certificates)
            for scenario in scenarios + [self.phone, self.sign_out]:
                scenario()
            self.collect_console(self.driver.current_url)
            if self.console_problems:
                raise Failure("the browser console reported problems:\n    " + "\n    ".join(self.console_problems))
        finally:
            self.driver.quit()


def start_mock(args):
    process = subprocess.Popen(
        [sys.executable, str(HERE / "mock_server.py"), "--port", "0", "--user", args.user, "--password", args.password],
        stdout=subprocess.PIPE,
        text=True,
    )
    line = process.stdout.readline()
    match = re.search(r"http://127\.0\.0\.1:\d+/", line)
    config = re.match(r"config file (.+)$", process.stdout.readline().strip())
    if not match or not config:
        process.kill()
        raise Failure(f"the mock did not start: {line!r}")
    return process, match.group(0), config.group(1)


def main():
    parser = argparse.ArgumentParser(description="Drive the opcgw web console in headless Chromium.")
    parser.add_argument("--base-url", help="the console, e.g. http://127.0.0.1:8080/")
    parser.add_argument("--start-mock", action="store_true", help="start tests/browser/mock_server.py and use it")
    parser.add_argument("--user", default=os.environ.get("OPCGW_WEB_USER", "opcua-user"))
    parser.add_argument("--password", default=os.environ.get("OPCGW_WEB_PASSWORD"), help="or env OPCGW_WEB_PASSWORD")
    parser.add_argument("--screenshots", required=True, help="directory for the PNG screenshots")
    parser.add_argument("--config-file", help="the gateway's config file: runs the configuration scenario (it appends a comment to provoke ambient drift)")
    parser.add_argument("--certificates", action="store_true", help="run the client-certificate scenario (needs a rejected, unexpired client certificate)")
    parser.add_argument("--checkpoints", action="store_true", help='at each point a test checks the gateway from outside, print "CHECKPOINT <name> <json>" and wait for "GO" on stdin')
    parser.add_argument("--timeout", type=float, default=15, help="seconds to wait for a page")
    parser.add_argument("--live-timeout", type=float, default=30, help="seconds to wait for a live change")
    args = parser.parse_args()
    mock = None
    if args.start_mock:
        args.password = args.password or "mock-password-123"
        mock, args.base_url, args.config_file = start_mock(args)
        args.certificates = True
    if not args.base_url or not args.password:
        parser.error("give --base-url and --password (or --start-mock)")
    print(f"console at {args.base_url}, screenshots in {args.screenshots}", flush=True)
    try:
        Console(args).run()
    except Failure as failure:
        print(f"FAILED: {failure}", file=sys.stderr)
        return 1
    finally:
        if mock:
            mock.terminate()
            mock.wait(timeout=5)
    print("console scenario passed", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
