"""The pages people read: the search page, procedure pages and /docs.

The first half checks what the server sends, through TestClient. The second half, marked
`browser`, starts the real app with uvicorn on a loopback port and drives headless Chromium
(Debian's `chromium` and `chromium-driver`; `make browser-deps` installs them) through a
search typed from the keyboard, a procedure page and Swagger UI, with every host but the
loopback one made unresolvable so that the pages prove they need nothing from elsewhere.
"""

from __future__ import annotations

import re
import socket
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import uvicorn
from conftest import ROOT, TINY, FakeEmbedder, build_index
from fastapi.testclient import TestClient
from selenium import webdriver
from selenium.webdriver import Chrome
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.action_chains import ActionChains
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.remote.webelement import WebElement
from selenium.webdriver.support.ui import Select, WebDriverWait

from procqa.api import STATIC, create_app, prefers_html
from procqa.settings import Settings

BROWSER_ACCEPT = "text/html,application/xhtml+xml,application/xml;q=0.9,image/avif,image/webp,*/*;q=0.8"
PAGES = ("index.html", "procedure.html")
DISCLAIMER = "Sample educational content, not medical advice."
QUESTION = "knee replacement recovery"
CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
SCREENSHOT = ROOT / "reports" / "screenshot.png"


@pytest.fixture
def client(settings: Settings, fake_embedder: FakeEmbedder) -> Iterator[TestClient]:
    with TestClient(create_app(settings, embedder=fake_embedder)) as client:
        yield client


# What the server sends


def test_search_page_is_served_with_a_strict_content_policy(client: TestClient) -> None:
    response = client.get("/", headers={"Accept": BROWSER_ACCEPT})

    assert response.status_code == 200
    assert response.headers["content-type"] == "text/html; charset=utf-8"
    policy = response.headers["content-security-policy"]
    assert "default-src 'self'" in policy
    assert "script-src 'self';" in policy  # no inline scripts, no other origin
    assert '<input id="q" name="q" type="search"' in response.text
    assert DISCLAIMER in response.text


@pytest.mark.parametrize("name", PAGES)
def test_pages_label_every_control_and_announce_results(name: str) -> None:
    html = (STATIC / name).read_text(encoding="utf-8")

    controls = re.findall(r"<(?:input|select)[^>]*\bid=\"([^\"]+)\"", html)
    for control in controls:
        assert f'<label for="{control}">' in html
    assert 'aria-live="polite"' in html
    assert '<html lang="en">' in html
    assert DISCLAIMER in html


@pytest.mark.parametrize("name", [*PAGES, "app.js", "app.css"])
def test_page_assets_name_no_other_host(name: str) -> None:
    text = (STATIC / name).read_text(encoding="utf-8")

    assert "://" not in text
    assert not re.search(r"""(?:src|href)=["']//""", text)
    assert "@import" not in text and "@font-face" not in text


def test_app_js_never_parses_text_as_html() -> None:
    script = (STATIC / "app.js").read_text(encoding="utf-8")

    for sink in ("innerHTML", "outerHTML", "insertAdjacentHTML", "document.write", "eval(", "new Function"):
        assert sink not in script


@pytest.mark.parametrize("path", ["/static/app.js", "/static/app.css", "/static/favicon.svg"])
def test_page_assets_are_served(client: TestClient, path: str) -> None:
    response = client.get(path)

    assert response.status_code == 200
    assert response.content == (STATIC / path.removeprefix("/static/")).read_bytes()


def test_procedure_address_gives_browsers_a_page(client: TestClient) -> None:
    response = client.get("/procedures/cpt-27447-total-knee-arthroplasty", headers={"Accept": BROWSER_ACCEPT})

    assert response.status_code == 200
    assert response.headers["content-type"] == "text/html; charset=utf-8"
    assert response.headers["vary"] == "Accept"
    assert '<script src="../static/app.js" defer></script>' in response.text


@pytest.mark.parametrize("accept", [None, "*/*", "application/json", "text/html;q=0.5, application/json"])
def test_procedure_address_gives_api_clients_json(client: TestClient, accept: str | None) -> None:
    headers = {"Accept": accept} if accept else {}
    response = client.get("/procedures/cpt-27447-total-knee-arthroplasty", headers=headers)

    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json"
    assert response.headers["vary"] == "Accept"
    assert response.json()["title"] == "Total knee arthroplasty"


@pytest.mark.parametrize(
    ("accept", "html"),
    [
        (BROWSER_ACCEPT, True),
        ("text/html", True),
        ("text/*, application/json;q=0.9", True),
        ("*/*", False),
        ("", False),
        ("application/json, text/html", False),
        ("text/html;q=0.1, */*", False),
        ("text/html;q=oops", False),
    ],
)
def test_prefers_html_follows_the_accept_weights(accept: str, html: bool) -> None:
    assert prefers_html(accept) is html


def test_docs_load_vendored_swagger_ui(client: TestClient) -> None:
    html = client.get("/docs").text

    assert '<script src="/static/swagger/swagger-ui-bundle.js"></script>' in html
    assert 'href="/static/swagger/swagger-ui.css"' in html
    assert "url: '/openapi.json'" in html
    assert "://" not in html
    for asset in ("swagger-ui-bundle.js", "swagger-ui.css"):
        response = client.get(f"/static/swagger/{asset}")
        assert response.status_code == 200
        assert len(response.content) > 100_000


def test_redoc_is_off(client: TestClient) -> None:
    assert client.get("/redoc").status_code == 404


def test_pages_stay_out_of_the_openapi_document(client: TestClient) -> None:
    paths = client.get("/openapi.json").json()["paths"]

    assert not {"/", "/docs", "/metrics"} & set(paths)


def test_every_operation_has_a_summary_and_an_example_answer(client: TestClient) -> None:
    paths = client.get("/openapi.json").json()["paths"]

    for path, methods in paths.items():
        for method, operation in methods.items():
            assert operation["summary"], (method, path)
            assert "example" in operation["responses"]["200"]["content"]["application/json"], (method, path)
    get_search = {p["name"]: p for p in paths["/search"]["get"]["parameters"]}
    assert get_search["q"]["examples"]["example"]["value"]
    assert "text/html" in paths["/procedures/{procedure_id}"]["get"]["responses"]["200"]["content"]


# In a browser


def free_socket() -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    return sock


@pytest.fixture(scope="module")
def live_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The real app, served by uvicorn from a thread, on the tiny index."""
    embedder = FakeEmbedder()
    index = build_index(TINY, tmp_path_factory.mktemp("web") / "index", embedder)
    app = create_app(Settings(index=index, corpus=TINY, _env_file=None), embedder=embedder)
    sock = free_socket()
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", access_log=False))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "uvicorn did not start"
        time.sleep(0.05)
    yield f"http://127.0.0.1:{sock.getsockname()[1]}"
    server.should_exit = True
    thread.join(10)
    sock.close()


@pytest.fixture(scope="module")
def browser() -> Iterator[Chrome]:
    """Headless Chromium that can resolve no host but the loopback address."""
    missing = [str(path) for path in (CHROMIUM, CHROMEDRIVER) if not path.exists()]
    if missing:
        pytest.fail(f"{' and '.join(missing)} not found: run `make browser-deps` to install Chromium and its driver")
    with tempfile.TemporaryDirectory(prefix="procqa-chromium-") as profile:
        options = webdriver.ChromeOptions()
        options.binary_location = str(CHROMIUM)
        for flag in (
            "--headless=new",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-dev-shm-usage",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            f"--user-data-dir={profile}",
            "--window-size=1280,1000",
            "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1",
        ):
            options.add_argument(flag)
        options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
        driver = webdriver.Chrome(options=options, service=Service(str(CHROMEDRIVER)))
        driver.set_page_load_timeout(30)
        try:
            yield driver
        finally:
            driver.quit()


def find(driver: Chrome, css: str) -> WebElement:
    """The first element matching `css`, waiting for the page to draw it."""
    return WebDriverWait(driver, 15).until(lambda d: d.find_element(By.CSS_SELECTOR, css))


def press(driver: Chrome, *keys: str, shift: bool = False) -> None:
    """Type into whatever has the focus, as a person at the keyboard does."""
    chain = ActionChains(driver)
    if shift:
        chain.key_down(Keys.SHIFT)
    chain.send_keys(*keys)
    if shift:
        chain.key_up(Keys.SHIFT)
    chain.perform()


def visit(driver: Chrome, url: str) -> None:
    driver.get_log("browser")  # forget what earlier pages logged
    driver.get(url)


def open_search_page(driver: Chrome, base: str, query: str = "") -> None:
    visit(driver, f"{base}/{query}")
    find(driver, "form[data-ready='true']")  # the filters are filled


def cards(driver: Chrome) -> list[WebElement]:
    find(driver, "#results .card")
    return driver.find_elements(By.CSS_SELECTOR, "#results .card")


def local_only(driver: Chrome, base: str) -> list[str]:
    """The resources the page loaded from anywhere but this service (none, we hope)."""
    urls = driver.execute_script("return performance.getEntriesByType('resource').map(e => e.name)")
    assert urls, "the page loaded no resources at all"
    return [url for url in urls if not url.startswith(f"{base}/")]


def console_errors(driver: Chrome) -> list[str]:
    return [entry["message"] for entry in driver.get_log("browser") if entry["level"] == "SEVERE"]


@pytest.mark.browser
def test_a_question_typed_and_entered_shows_answer_cards(browser: Chrome, live_url: str) -> None:
    open_search_page(browser, live_url)

    find(browser, "#q").send_keys(QUESTION, Keys.ENTER)

    first = cards(browser)[0]
    assert first.find_element(By.CSS_SELECTOR, ".card-title").text == "Total knee arthroplasty"
    assert first.find_element(By.CSS_SELECTOR, ".section-name").text == "Recovery"
    assert first.find_element(By.CSS_SELECTOR, ".badge").text == "CPT 27447"
    marked = first.find_element(By.CSS_SELECTOR, ".passage mark").text
    assert marked.startswith("Follow-up: Clinic visits around 2 weeks")
    assert f"for “{QUESTION}”" in find(browser, "#status").text
    assert "q=knee+replacement+recovery" in browser.current_url
    assert local_only(browser, live_url) == []
    assert console_errors(browser) == []
    SCREENSHOT.parent.mkdir(parents=True, exist_ok=True)
    assert browser.save_screenshot(str(SCREENSHOT))


@pytest.mark.browser
def test_a_question_the_collection_does_not_cover_shows_a_banner_over_grey_cards(
    browser: Chrome, live_url: str
) -> None:
    open_search_page(browser, live_url)

    find(browser, "#q").send_keys("CPT 31231 risks", Keys.ENTER)

    cards(browser)
    banner = find(browser, "#coverage")
    assert banner.is_displayed()
    assert banner.text == "No page has the code 31231. Closest pages:"
    assert "uncovered" in find(browser, "#results").get_attribute("class")
    assert find(browser, ".card .confidence").text.endswith("% confident")

    find(browser, "#q").clear()
    find(browser, "#q").send_keys(QUESTION, Keys.ENTER)
    WebDriverWait(browser, 15).until(lambda d: not d.find_element(By.CSS_SELECTOR, "#coverage").is_displayed())
    assert "uncovered" not in find(browser, "#results").get_attribute("class")


@pytest.mark.browser
def test_the_search_page_works_by_keyboard_alone(browser: Chrome, live_url: str) -> None:
    open_search_page(browser, live_url)

    order = []
    for _ in range(5):
        press(browser, Keys.TAB)
        focused = browser.switch_to.active_element
        order.append(focused.get_attribute("id") or focused.text)
        outline = browser.execute_script("return getComputedStyle(arguments[0]).outlineStyle", focused)
        assert outline != "none", f"{order[-1]} shows no focus outline"

    assert order == ["Skip to results", "q", "section", "code", "Search"]
    press(browser, Keys.TAB, shift=True)  # to the procedure filter
    press(browser, Keys.TAB, shift=True)  # to the section filter
    press(browser, "Symptoms")  # typing on a select picks the option
    press(browser, Keys.TAB, shift=True)
    press(browser, "wheezing", Keys.ENTER)

    found = cards(browser)
    assert [c.find_element(By.CSS_SELECTOR, ".card-title").text for c in found] == ["Asthma"]
    assert "section=Symptoms" in browser.current_url


@pytest.mark.browser
def test_filters_offer_the_sections_and_coded_procedures(browser: Chrome, live_url: str) -> None:
    open_search_page(browser, live_url)

    sections = [o.get_attribute("value") for o in Select(find(browser, "#section")).options]
    procedures = Select(find(browser, "#code"))
    assert sections[0] == "" and {"Recovery", "Symptoms", "Summary"} <= set(sections)
    assert [o.text for o in procedures.options][:2] == ["Any procedure", "Carpal tunnel release (CPT 64721)"]

    procedures.select_by_value("45378")
    find(browser, "#q").send_keys("recovery", Keys.ENTER)

    titles = {c.find_element(By.CSS_SELECTOR, ".card-title").text for c in cards(browser)}
    assert titles == {"Diagnostic colonoscopy"}


@pytest.mark.browser
def test_a_search_in_the_address_runs_on_load_and_reports_errors(browser: Chrome, live_url: str) -> None:
    open_search_page(browser, live_url, "?q=" + "k" * 1001)

    status = find(browser, "#status")
    WebDriverWait(browser, 15).until(lambda _: "Could not search" in status.text)
    assert "the limit is 1000" in status.text
    assert browser.find_elements(By.CSS_SELECTOR, "#results .card") == []


@pytest.mark.browser
def test_api_text_is_shown_as_text_not_markup(browser: Chrome, live_url: str) -> None:
    hostile = "<img src=x onerror=\"document.title='pwned'\"> knee recovery"
    open_search_page(browser, live_url)

    find(browser, "#q").send_keys(hostile, Keys.ENTER)

    cards(browser)
    assert hostile in find(browser, "#status").text
    assert browser.find_elements(By.CSS_SELECTOR, "main img") == []
    assert browser.title != "pwned"


@pytest.mark.browser
def test_a_card_link_opens_the_whole_procedure_at_its_section(browser: Chrome, live_url: str) -> None:
    open_search_page(browser, live_url, "?q=knee+replacement+recovery")
    link = cards(browser)[0].find_element(By.CSS_SELECTOR, ".card-title a")

    link.send_keys(Keys.ENTER)

    WebDriverWait(browser, 15).until(lambda d: d.find_element(By.ID, "title").text == "Total knee arthroplasty")
    assert browser.current_url == f"{live_url}/procedures/cpt-27447-total-knee-arthroplasty#section-recovery"
    assert browser.title == "Total knee arthroplasty · procqa"
    names = [h.text for h in browser.find_elements(By.CSS_SELECTOR, "#sections h2")]
    assert "Summary" in names and "Recovery" in names
    target = find(browser, "section.target")
    assert target.get_attribute("id") == "section-recovery"
    assert browser.switch_to.active_element == target
    assert DISCLAIMER in browser.find_element(By.TAG_NAME, "footer").text
    assert local_only(browser, live_url) == []


@pytest.mark.browser
def test_an_unknown_procedure_page_says_so(browser: Chrome, live_url: str) -> None:
    visit(browser, f"{live_url}/procedures/cpt-00000")

    WebDriverWait(browser, 15).until(lambda d: d.find_element(By.ID, "title").text == "Procedure not available")
    assert "'cpt-00000'" in find(browser, "#status").text


@pytest.mark.browser
def test_docs_render_offline(browser: Chrome, live_url: str) -> None:
    visit(browser, f"{live_url}/docs")

    find(browser, ".swagger-ui")
    WebDriverWait(browser, 30).until(
        lambda d: "/search" in [e.text for e in d.find_elements(By.CSS_SELECTOR, ".opblock-summary-path")]
    )
    assert local_only(browser, live_url) == []
    assert console_errors(browser) == []
