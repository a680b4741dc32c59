//! A real browser for console tests: Debian's headless Chromium driven over WebDriver
//! (`chromedriver`, started per test on a free port) with `fantoccini`.
//!
//! `.ci/run` installs `chromium` and `chromium-driver`; `CULLIS_CHROMEDRIVER` points elsewhere.
//! A missing driver fails the test with the install command — these tests are never skipped.

use fantoccini::{Client, ClientBuilder, Locator};
use serde_json::json;
use std::os::unix::process::CommandExt as _;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// How long a wait for an element or a text gives up after.
const WAIT: Duration = Duration::from_secs(15);

/// One headless Chromium session; the driver process is killed on drop.
pub struct Browser {
    pub client: Client,
    driver: Child,
}

fn chromedriver() -> PathBuf {
    let path = std::env::var_os("CULLIS_CHROMEDRIVER")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/usr/bin/chromedriver"));
    assert!(
        path.exists(),
        "{} not found: the console tests need a real browser — apt-get install -y chromium \
         chromium-driver (or set CULLIS_CHROMEDRIVER)",
        path.display()
    );
    path
}

/// Where screenshots go: `target/screenshots/` beside the build (not committed).
pub fn screenshot_dir() -> PathBuf {
    let binary_dir = crate::stack::binary("cullis-broker");
    let target = binary_dir
        .parent()
        .and_then(|profile| profile.parent())
        .expect("the target directory")
        .to_path_buf();
    target.join("screenshots")
}

impl Browser {
    /// Starts chromedriver and a headless Chromium window of 1400×1000.
    pub async fn start() -> Browser {
        // fantoccini's connector takes the process-wide rustls provider; reqwest brings ring
        // into the build beside aws-lc-rs, so name one.
        let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
        let port = crate::stack::proxy::free_port();
        // Its own process group: Chromium's processes are the driver's children, and on drop
        // the whole group goes (killing only the driver left every browser running).
        let driver = Command::new(chromedriver())
            .process_group(0)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("chromedriver starts");
        let capabilities = json!({
            "goog:chromeOptions": {
                "binary": std::env::var("CULLIS_CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".into()),
                // As root (CI) Chromium needs --no-sandbox.
                "args": ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                         "--window-size=1400,1000"]
            }
        });
        let capabilities = match capabilities {
            serde_json::Value::Object(map) => map,
            _ => unreachable!(),
        };
        let url = format!("http://127.0.0.1:{port}");
        let deadline = Instant::now() + WAIT;
        let client = loop {
            match ClientBuilder::rustls()
                .expect("rustls connector")
                .capabilities(capabilities.clone())
                .connect(&url)
                .await
            {
                Ok(client) => break client,
                Err(error) if Instant::now() < deadline => {
                    let _ = error;
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                Err(error) => panic!("chromedriver did not start a Chromium session: {error}"),
            }
        };
        Browser { client, driver }
    }

    pub async fn goto(&self, url: &str) {
        self.client.goto(url).await.expect("navigates");
    }

    /// The page's HTML as the browser has it now.
    pub async fn source(&self) -> String {
        self.client.source().await.expect("page source")
    }

    pub async fn current_path(&self) -> String {
        self.client
            .current_url()
            .await
            .expect("current url")
            .path()
            .to_owned()
    }

    /// Types `value` into the field `name` inside `form` (a CSS selector).
    pub async fn fill(&self, form: &str, name: &str, value: &str) {
        let field = self.wait_for(&format!("{form} [name=\"{name}\"]")).await;
        field.clear().await.expect("clears field");
        field.send_keys(value).await.expect("types");
    }

    /// Clicks the element at `css` once it is there.
    pub async fn click(&self, css: &str) {
        self.wait_for(css).await.click().await.expect("clicks");
    }

    /// Clicks the submit button with the visible text `label` inside `scope`.
    pub async fn press(&self, scope: &str, label: &str) {
        let xpath = format!(
            "{}//button[normalize-space()='{label}']",
            css_scope_to_xpath(scope)
        );
        let deadline = Instant::now() + WAIT;
        loop {
            match self.client.find(Locator::XPath(&xpath)).await {
                Ok(button) => {
                    button.click().await.expect("clicks button");
                    return;
                }
                Err(_) if Instant::now() < deadline => {
                    tokio::time::sleep(Duration::from_millis(100)).await
                }
                Err(error) => panic!("no button '{label}' in {scope}: {error}"),
            }
        }
    }

    /// Accepts a `confirm()` dialog if one is open (dangerous buttons ask first).
    pub async fn accept_dialog(&self) {
        let deadline = Instant::now() + Duration::from_secs(2);
        while Instant::now() < deadline {
            if self.client.accept_alert().await.is_ok() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// The element at `css`, waiting for it to appear.
    pub async fn wait_for(&self, css: &str) -> fantoccini::elements::Element {
        let deadline = Instant::now() + WAIT;
        loop {
            match self.client.find(Locator::Css(css)).await {
                Ok(element) => return element,
                Err(_) if Instant::now() < deadline => {
                    tokio::time::sleep(Duration::from_millis(100)).await
                }
                Err(error) => panic!(
                    "no element {css} on {}: {error}\n{}",
                    self.current_path().await,
                    self.source().await
                ),
            }
        }
    }

    /// The visible text of the element at `css` (found again if the page replaced it between
    /// finding and reading, as a navigation or an htmx swap can).
    pub async fn text(&self, css: &str) -> String {
        let deadline = Instant::now() + WAIT;
        loop {
            match self.wait_for(css).await.text().await {
                Ok(text) => return text,
                Err(_) if Instant::now() < deadline => {
                    tokio::time::sleep(Duration::from_millis(100)).await
                }
                Err(error) => panic!("{css} could not be read: {error}"),
            }
        }
    }

    /// Waits until the element at `css` has attribute `name` = `value` (re-finding it while
    /// htmx swaps fragments in and out); returns what it last saw when it gives up.
    pub async fn wait_for_attr(&self, css: &str, name: &str, value: &str) {
        let deadline = Instant::now() + WAIT;
        loop {
            let seen = match self.client.find(Locator::Css(css)).await {
                Ok(element) => element.attr(name).await.ok().flatten(),
                Err(_) => None,
            };
            if seen.as_deref() == Some(value) {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "{css} never had {name}=\"{value}\"; last seen: {seen:?}"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Waits until the page's text contains `needle` (e.g. after a live update).
    pub async fn wait_for_text(&self, css: &str, needle: &str) -> String {
        let deadline = Instant::now() + WAIT;
        loop {
            let text = match self.client.find(Locator::Css(css)).await {
                Ok(element) => element.text().await.unwrap_or_default(),
                Err(_) => String::new(),
            };
            if text.contains(needle) {
                return text;
            }
            assert!(
                Instant::now() < deadline,
                "'{needle}' never appeared in {css}; it says: {text}"
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// Saves a PNG of the window as `target/screenshots/<name>.png`.
    pub async fn screenshot(&self, name: &str) {
        let png = self.client.screenshot().await.expect("screenshot");
        let dir = screenshot_dir();
        std::fs::create_dir_all(&dir).expect("screenshot directory");
        std::fs::write(dir.join(format!("{name}.png")), png).expect("writes screenshot");
    }

    /// Forgets every cookie (a new visitor).
    pub async fn clear_cookies(&self) {
        self.client
            .delete_all_cookies()
            .await
            .expect("clears cookies");
    }
}

/// `#id` or `form#id` → an XPath prefix for "inside that element"; anything else → the page.
fn css_scope_to_xpath(scope: &str) -> String {
    match scope.split_once('#') {
        Some((_, id)) => format!("//*[@id='{id}']"),
        None => String::new(),
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        // SIGKILL to the process group the driver leads (its pid): driver and browser together.
        let _ = Command::new("kill")
            .args(["-KILL", "--", &format!("-{}", self.driver.id())])
            .status();
        let _ = self.driver.wait();
    }
}
