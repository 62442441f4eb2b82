from __future__ import annotations

import json
import re
from http import HTTPMethod, HTTPStatus

import pytest

from runtime._http import (
    BODY_USED_MESSAGE,
    BodyUsedError,
    Headers,
    HttpError,
    HttpRangeError,
    HttpTypeError,
    Request,
    Response,
)
from runtime.sockets import WebSocketPair
from shards._errors import ShardsError

BODY_USED = "^" + re.escape(BODY_USED_MESSAGE) + "$"
STATUS_RANGE = r"^Responses may only be constructed with status codes in the range 200 to 599, inclusive\.$"


# --------------------------------------------------------------------------- errors


def test_error_families():
    """TypeError-family and RangeError(ValueError)-family errors, all in our tree."""
    assert issubclass(HttpTypeError, TypeError)
    assert issubclass(HttpTypeError, HttpError)
    assert issubclass(HttpRangeError, ValueError)
    assert issubclass(HttpError, ShardsError)
    assert issubclass(BodyUsedError, HttpTypeError)
    assert issubclass(BodyUsedError, OSError)


def test_body_used_message_is_productions():
    """The used-body message is workerd's, verbatim."""
    assert BODY_USED_MESSAGE == (
        "Body has already been used. It can only be used once. Use tee() first if you need to read it twice."
    )


# --------------------------------------------------------------------------- Headers


def test_headers_are_case_insensitive():
    """Names match whatever their case; keys come back lowercase."""
    h = Headers({"Content-Type": "text/html"})
    assert h.get("content-type") == "text/html"
    assert h.get("CONTENT-TYPE") == "text/html"
    assert h.has("Content-type")
    assert "CONTENT-TYPE" in h
    assert h.keys() == ["content-type"]


def test_headers_set_append_delete():
    """set replaces, append adds, delete removes; get joins with ', '."""
    h = Headers()
    h.append("X-A", "1")
    h.append("x-a", "2")
    assert h.get("x-a") == "1, 2"
    h.set("X-a", "3")
    assert h.get("x-a") == "3"
    h.delete("X-A")
    assert h.get("x-a") is None
    assert not h.has("x-a")
    h.delete("never-set")


def test_headers_set_cookie_kept_apart():
    """Set-Cookie values are listed one by one; other repeats are joined."""
    h = Headers([("Set-Cookie", "a=1"), ("set-cookie", "b=2"), ("Vary", "x"), ("vary", "y")])
    assert h.getSetCookie() == ["a=1", "b=2"]
    assert h.get("set-cookie") == "a=1, b=2"
    assert h.entries() == [("set-cookie", "a=1"), ("set-cookie", "b=2"), ("vary", "x, y")]
    assert h.get_all("Set-Cookie") == ["a=1", "b=2"]
    assert h.get_all("vary") == ["x, y"]
    assert h.get_all("absent") is None
    assert Headers().getSetCookie() == []


def test_headers_iteration_is_sorted():
    """items/keys/values/iteration follow production's sorted order."""
    h = Headers({"b": "2", "A": "1", "c": "3"})
    assert h.items() == [("a", "1"), ("b", "2"), ("c", "3")]
    assert h.keys() == ["a", "b", "c"]
    assert h.values() == ["1", "2", "3"]
    assert list(h) == ["a", "b", "c"]
    assert len(h) == 3
    assert repr(h) == "Headers([('a', '1'), ('b', '2'), ('c', '3')])"


def test_headers_read_like_http_message():
    """headers[name] is the value or None, as on Python Workers' HTTPMessage."""
    h = Headers({"a": "1"})
    assert h["A"] == "1"
    assert h["missing"] is None
    assert 5 not in h


def test_headers_init_forms():
    """A dict, a list of pairs, or another Headers (copied, not shared)."""
    assert Headers([("a", "1"), ["b", "2"]]).items() == [("a", "1"), ("b", "2")]  # type: ignore[list-item]
    original = Headers({"a": "1"})
    copy = Headers(original)
    copy.set("a", "2")
    assert original.get("a") == "1"


def test_headers_values_are_trimmed():
    """Leading and trailing HTTP whitespace is dropped from values."""
    h = Headers({"a": " \t x y \r\n"})
    assert h.get("a") == "x y"


def test_headers_int_values_become_strings():
    """An int value is stringified, as production's JS does with a number."""
    assert Headers({"content-length": 5}).get("content-length") == "5"


@pytest.mark.parametrize("name", ["", "a b", "a:b", "é", "a\n", "(x)"])
def test_headers_refuse_invalid_names(name):
    """A name must be an HTTP token."""
    with pytest.raises(HttpTypeError, match=r"^Invalid header name\.$"):
        Headers({name: "v"})
    with pytest.raises(HttpTypeError, match=r"^Invalid header name\.$"):
        Headers().get(name)


def test_headers_refuse_non_string_names():
    """A name must be a str."""
    with pytest.raises(HttpTypeError, match=r"^Invalid header name\.$"):
        Headers().set(1, "v")  # type: ignore[arg-type]


@pytest.mark.parametrize("value", ["a\nb", "a\rb", "a\x00b"])
def test_headers_refuse_invalid_values(value):
    """A value may not hold NUL, CR or LF inside."""
    with pytest.raises(HttpTypeError, match=r"^Invalid header value\.$"):
        Headers().append("x", value)


def test_headers_refuse_non_string_values():
    """Values other than str and int are refused."""
    with pytest.raises(HttpTypeError, match=r"^Header value must be a str, not NoneType$"):
        Headers().set("x", None)  # type: ignore[arg-type]
    with pytest.raises(HttpTypeError, match=r"^Header value must be a str, not bool$"):
        Headers().set("x", True)  # type: ignore[arg-type]


@pytest.mark.parametrize("init", ["a: b", b"x", 5, [5], ["ab"]])
def test_headers_refuse_other_inits(init):
    """Only mappings, pairs and Headers initialise headers."""
    with pytest.raises(HttpTypeError, match=r"^Received unexpected type for headers argument$"):
        Headers(init)


def test_headers_refuse_bad_pairs():
    """Each pair has exactly two elements."""
    with pytest.raises(
        HttpTypeError,
        match=r"^To initialize a Headers object from a sequence, each inner sequence must have exactly two elements\.$",
    ):
        Headers([("a", "b", "c")])  # type: ignore[list-item]


# --------------------------------------------------------------------------- Request


@pytest.mark.parametrize(
    ("url", "normalized"),
    [
        ("http://do/anything", "http://do/anything"),
        ("HTTPS://Example.COM", "https://example.com/"),
        ("https://example.com:443/a b?q=1 2#f g", "https://example.com/a%20b?q=1%202#f%20g"),
        ("http://example.com:80", "http://example.com/"),
        ("http://example.com:8080/x?", "http://example.com:8080/x?"),
        ("http://[::1]:8787/x", "http://[::1]:8787/x"),
        ("http://user:pw@h/", "http://user:pw@h/"),
        ("http://bücher.de/ü", "http://xn--bcher-kva.de/%C3%BC"),
        ("http://a/#x?y", "http://a/#x?y"),
        ("  http://a/\tb\n", "http://a/b"),
        ("http://a/%20", "http://a/%20"),
    ],
)
def test_request_url_is_normalized(url, normalized):
    """Absolute http(s) URLs are accepted and normalized as a URL parser would."""
    assert Request(url).url == normalized


@pytest.mark.parametrize(
    "url",
    [
        "",
        "/relative",
        "do/anything",
        "ftp://x/",
        "ws://a/",
        "http://",
        "http:foo",
        "http://a:99999/",
        "http://a b/",
    ],
)
def test_request_refuses_bad_urls(url):
    """Anything else fails with production's fetch message."""
    with pytest.raises(HttpTypeError, match="^" + re.escape(f"Fetch API cannot load: {url}") + "$"):
        Request(url)


@pytest.mark.parametrize("url", ["http://" + "ü" * 64 + "/", "http://a/\ud800"])
def test_request_refuses_unencodable_urls(url):
    """A host IDNA cannot encode, or a lone surrogate in the path, is not a URL."""
    with pytest.raises(HttpTypeError, match="^" + re.escape(f"Fetch API cannot load: {url}") + "$"):
        Request(url)


def test_request_refuses_other_inputs():
    """The input is a URL or a Request."""
    with pytest.raises(HttpTypeError, match=r"^Request input must be a URL str or a Request, not bytes$"):
        Request(b"http://a/")  # type: ignore[arg-type]


def test_request_defaults():
    """GET, no headers, no body, not used."""
    r = Request("http://do/")
    assert r.method == "GET"
    assert r.method == HTTPMethod.GET
    assert r.headers.items() == []
    assert not r.body_used
    assert repr(r) == "Request(method='GET', url='http://do/')"


@pytest.mark.parametrize(
    ("method", "expected"),
    [("post", "POST"), ("Patch", "PATCH"), ("DELETE", "DELETE"), (HTTPMethod.PUT, "PUT")],
)
def test_request_method_is_upper_cased(method, expected):
    """Known methods of any case are accepted and stored upper case."""
    assert Request("http://do/", method=method).method == expected


@pytest.mark.parametrize("method", ["", "FETCH", "GE T", "CONNECT"])
def test_request_refuses_unknown_methods(method):
    """Unknown methods fail with production's message."""
    with pytest.raises(HttpTypeError, match="^" + re.escape(f"Invalid HTTP method string: {method}") + "$"):
        Request("http://do/", method=method)


def test_request_refuses_non_string_methods():
    """A method is a str."""
    with pytest.raises(HttpTypeError, match=r"^Invalid HTTP method string: 1$"):
        Request("http://do/", method=1)  # type: ignore[arg-type]


@pytest.mark.parametrize("method", ["GET", "head", None])
@pytest.mark.parametrize("body", ["", "x", b"x"])
def test_get_and_head_cannot_have_bodies(method, body):
    """A GET or HEAD request (GET is the default) refuses any body, even an empty one."""
    with pytest.raises(HttpTypeError, match=r"^Request with a GET or HEAD method cannot have a body\.$"):
        Request("http://do/", method=method, body=body)


async def test_request_str_body():
    """A str body is UTF-8 and sets a text content type."""
    r = Request("http://do/", method="POST", body="héllo")
    assert r.headers.get("content-type") == "text/plain;charset=UTF-8"
    assert await r.bytes() == "héllo".encode()


async def test_request_body_keeps_caller_content_type():
    """A content type given by the caller wins."""
    r = Request("http://do/", method="POST", body="{}", headers={"Content-Type": "application/json"})
    assert r.headers.get("content-type") == "application/json"
    assert await r.json() == {}


async def test_request_bytes_body_sets_no_content_type():
    """A bytes body sets no content type."""
    r = Request("http://do/", method="PUT", body=b"\x00\x01")
    assert not r.headers.has("content-type")
    assert await r.arrayBuffer() == b"\x00\x01"


def test_request_refuses_other_bodies():
    """Bodies are str, bytes or None."""
    with pytest.raises(HttpTypeError, match=r"^Unsupported type in Request: bytearray$"):
        Request("http://do/", method="POST", body=bytearray(b"x"))  # type: ignore[arg-type]


@pytest.mark.parametrize("first", ["text", "json", "bytes", "arrayBuffer", "buffer"])
@pytest.mark.parametrize("second", ["text", "json", "bytes", "arrayBuffer", "buffer"])
async def test_request_body_reads_once(first, second):
    """Any second read fails with production's message, and counts as TypeError and OSError."""
    r = Request("http://do/", method="POST", body="1")
    await getattr(r, first)()
    assert r.body_used
    with pytest.raises(BodyUsedError, match=BODY_USED) as info:
        await getattr(r, second)()
    assert isinstance(info.value, TypeError)
    assert isinstance(info.value, OSError)


async def test_null_body_reads_as_empty_and_never_used():
    """A request without a body reads as empty, any number of times."""
    r = Request("http://do/")
    assert await r.text() == ""
    assert await r.bytes() == b""
    assert not r.body_used


async def test_text_decodes_like_production():
    """Invalid UTF-8 becomes U+FFFD and a leading BOM is dropped."""
    assert await Request("http://do/", method="POST", body=b"\xef\xbb\xbfa\xffb").text() == "a\ufffdb"


async def test_request_json_errors_are_json_errors():
    """Invalid JSON raises json.JSONDecodeError, as Python Workers' json.loads does."""
    with pytest.raises(json.JSONDecodeError):
        await Request("http://do/", method="POST", body="{nope").json()


async def test_request_clone_is_independent():
    """A clone has its own body and headers."""
    r = Request("http://do/x", method="POST", body="abc", headers={"a": "1"})
    c = r.clone()
    c.headers.set("a", "2")
    assert await c.text() == "abc"
    assert await r.text() == "abc"
    assert r.headers.get("a") == "1"
    assert (c.url, c.method) == (r.url, r.method)


async def test_request_clone_after_read_fails():
    """A used body cannot be cloned."""
    r = Request("http://do/", method="POST", body="abc")
    await r.text()
    with pytest.raises(BodyUsedError, match=BODY_USED):
        r.clone()


async def test_request_from_request_takes_the_body():
    """Copying a request moves its body: the original counts as used."""
    original = Request("http://do/p", method="POST", body="abc", headers={"a": "1"})
    copy = Request(original)
    assert original.body_used
    assert (copy.url, copy.method, copy.headers.get("a")) == ("http://do/p", "POST", "1")
    assert await copy.text() == "abc"
    with pytest.raises(BodyUsedError, match=BODY_USED):
        await original.text()


async def test_request_from_request_with_overrides():
    """Method, headers and body given to the copy replace the original's."""
    original = Request("http://do/p", method="POST", body="abc", headers={"a": "1"})
    copy = Request(original, method="put", headers={"b": "2"}, body=b"new")
    assert (copy.method, copy.headers.items()) == ("PUT", [("b", "2")])
    assert await copy.bytes() == b"new"
    assert not original.body_used
    with pytest.raises(HttpTypeError, match=r"^Request with a GET or HEAD method cannot have a body\.$"):
        Request(original, method="GET")


async def test_request_from_used_request_fails():
    """A request whose body was read cannot be copied without a new body."""
    original = Request("http://do/", method="POST", body="abc")
    await original.text()
    with pytest.raises(HttpTypeError, match=r"^Cannot reconstruct a Request with a used body\.$"):
        Request(original)


def test_request_from_bodyless_request():
    """Copying a request without a body leaves the original unused."""
    original = Request("http://do/")
    Request(original)
    assert not original.body_used


# --------------------------------------------------------------------------- Response


async def test_response_defaults():
    """200 OK, no body, no headers."""
    r = Response()
    assert (r.status, r.ok, r.status_text) == (200, True, "OK")
    assert r.headers.items() == []
    assert await r.text() == ""
    assert r.webSocket is None
    assert r.web_socket is None
    assert repr(r) == "Response(status=200)"


async def test_response_str_body():
    """A str body is UTF-8 text with a text content type."""
    r = Response("héllo", status=201)
    assert (r.status, r.ok) == (201, True)
    assert r.headers.get("content-type") == "text/plain;charset=UTF-8"
    assert await r.text() == "héllo"
    assert repr(r) == "Response(status=201, content_type='text/plain;charset=UTF-8')"


async def test_response_positional_order_is_python_workers():
    """Response(body, status, status_text, headers, web_socket), as workers.Response."""
    r = Response(b"x", 404, "Nope", [("x-a", "1")])
    assert (r.status, r.ok, r.status_text, r.headers.get("x-a")) == (404, False, "Nope", "1")
    assert not r.headers.has("content-type")
    assert await r.bytes() == b"x"
    assert repr(r) == "Response(status=404, status_text='Nope')"


def test_response_standard_status_text():
    """An empty status text shows the standard reason phrase (empty if none)."""
    assert Response(status=404).status_text == "Not Found"
    assert Response(status=599).status_text == ""
    assert Response(status=HTTPStatus.CREATED).status == 201


@pytest.mark.parametrize("status", [0, 100, 101, 199, 600, 1000, -1])
def test_response_status_range(status):
    """Without a websocket the status is 200-599."""
    with pytest.raises(HttpRangeError, match=STATUS_RANGE):
        Response(status=status)


def test_response_status_must_be_int():
    """A status is an int, not a str or a bool."""
    with pytest.raises(HttpTypeError, match=r"^Response status must be an int, not str$"):
        Response(status="200")  # type: ignore[arg-type]
    with pytest.raises(HttpTypeError, match=r"^Response status must be an int, not bool$"):
        Response(status=True)


def test_response_websocket_upgrade():
    """status=101 with web_socket completes an upgrade."""
    client = WebSocketPair().client
    r = Response(None, status=101, web_socket=client)
    assert r.status == 101
    assert r.webSocket is client
    assert r.web_socket is client
    assert not r.ok


@pytest.mark.parametrize("status", [None, 200, 204])
def test_response_websocket_needs_101(status):
    """A websocket response must have status 101."""
    with pytest.raises(HttpRangeError, match=r"^Responses with a WebSocket must have status code 101\.$"):
        Response(None, status=status, web_socket=WebSocketPair().client)


@pytest.mark.parametrize("status", [204, 205, 304])
def test_null_body_statuses_refuse_bodies(status):
    """204, 205 and 304 carry no body; an empty one is tolerated and dropped."""
    with pytest.raises(
        HttpTypeError,
        match=r"^Response with null body status \(101, 204, 205, or 304\) cannot have a body\.$",
    ):
        Response("x", status=status)
    empty = Response("", status=status)
    assert not empty.headers.has("content-type")


def test_websocket_response_refuses_a_body():
    """101 is a null-body status too."""
    with pytest.raises(HttpTypeError, match=r"cannot have a body\.$"):
        Response(b"x", status=101, web_socket=WebSocketPair().client)


def test_response_refuses_other_bodies():
    """Bodies are str, bytes or None, with Python Workers' message."""
    with pytest.raises(HttpTypeError, match=r"^Unsupported type in Response: dict$"):
        Response({"a": 1})  # type: ignore[arg-type]


@pytest.mark.parametrize("text", ["a\nb", "\r", "\x00", "tab\there"])
def test_response_refuses_control_characters_in_status_text(text):
    """The status text may not hold control characters."""
    with pytest.raises(HttpTypeError, match=r"^Invalid statusText$"):
        Response(status_text=text)


def test_response_status_text_must_be_str():
    """The status text is a str."""
    with pytest.raises(HttpTypeError, match=r"^Response status_text must be a str, not int$"):
        Response(status_text=5)  # type: ignore[arg-type]


async def test_response_body_reads_once():
    """A second read fails with production's message."""
    r = Response("x")
    assert await r.text() == "x"
    assert r.body_used
    with pytest.raises(BodyUsedError, match=BODY_USED):
        await r.json()


async def test_response_json_builds_a_response():
    """Response.json(data) is json.dumps(data) with an application/json content type."""
    r = Response.json({"a": [1, 2.5, None, "é"]}, status=201)
    assert r.status == 201
    assert r.headers.get("content-type") == "application/json"
    assert await r.text() == '{"a": [1, 2.5, null, "\\u00e9"]}'


async def test_response_json_keeps_caller_content_type():
    """A content type in headers is kept."""
    r = Response.json([1], headers={"Content-Type": "application/vnd.x+json", "x-a": "1"})
    assert r.headers.items() == [("content-type", "application/vnd.x+json"), ("x-a", "1")]
    assert await r.json() == [1]


async def test_response_from_json_is_the_same():
    """from_json is Python Workers' other name for the constructor."""
    r = Response.from_json("s", 202, "Accepted!")
    assert (r.status, r.status_text) == (202, "Accepted!")
    assert await r.json() == "s"


@pytest.mark.parametrize("value", [float("nan"), float("inf"), [float("-inf")]])
def test_response_json_is_strict(value):
    """NaN and infinities are refused rather than written as invalid JSON."""
    with pytest.raises(
        HttpTypeError, match=r"^Response\.json\(\): Out of range float values are not JSON compliant"
    ):
        Response.json(value)


def test_response_json_refuses_unserializable():
    """Values json cannot write are refused with json's reason."""
    with pytest.raises(
        HttpTypeError, match=r"^Response\.json\(\): Object of type set is not JSON serializable$"
    ):
        Response.json({1, 2})


async def test_response_json_reads_on_instances():
    """On an instance, json() reads and parses the body."""
    r = Response('{"n": 1}')
    assert await r.json() == {"n": 1}


def test_response_redirect():
    """redirect() sets location (normalized) and defaults to 302."""
    r = Response.redirect("https://Example.com")
    assert (r.status, r.headers.get("location")) == (302, "https://example.com/")
    assert Response.redirect("http://a/b", 308).status == 308


@pytest.mark.parametrize("status", [200, 300, 304, 404])
def test_response_redirect_refuses_other_statuses(status):
    """Only redirect statuses are allowed, with production's message."""
    with pytest.raises(
        HttpRangeError,
        match=f"^{status} is not a redirect status code\\. It must be one of: 301, 302, 303, 307, or 308\\.$",
    ):
        Response.redirect("http://a/", status)


@pytest.mark.parametrize("url", ["/relative", "not a url", 5])
def test_response_redirect_refuses_bad_urls(url):
    """The target must be an absolute URL."""
    with pytest.raises(HttpTypeError, match="^" + re.escape(f"Unable to parse URL: {url}") + "$"):
        Response.redirect(url)


async def test_response_clone_is_independent():
    """A clone has its own body and headers."""
    r = Response("abc", 203, "Hm", {"a": "1"})
    c = r.clone()
    c.headers.set("a", "2")
    assert (c.status, c.status_text) == (203, "Hm")
    assert await c.text() == "abc"
    assert await r.text() == "abc"
    assert r.headers.get("a") == "1"


async def test_response_clone_after_read_fails():
    """A used body cannot be cloned."""
    r = Response("abc")
    await r.bytes()
    with pytest.raises(BodyUsedError, match=BODY_USED):
        r.clone()


def test_response_clone_refuses_websockets():
    """A websocket handshake response cannot be cloned."""
    r = Response(None, 101, web_socket=WebSocketPair().client)
    with pytest.raises(HttpTypeError, match=r"^Cannot clone a response to a WebSocket handshake\.$"):
        r.clone()
