// A small W3C WebDriver client for Debian's chromium-driver: sessions of headless Chromium (with
// a fake microphone fed from a WAV file), navigation, clicks, keys, scripts, element screenshots
// and the browser's console log, plus a PNG decoder to read screenshots' pixels.
import CZlib
import Foundation
import _TestSupport

struct WebDriverError: Error, CustomStringConvertible {
    let description: String
}

/// chromedriver on a free port, started once per test process.
final class ChromeDriver: @unchecked Sendable {
    static let shared = Result { try ChromeDriver() }
    let port: Int
    let process: Process

    init() throws {
        guard FileManager.default.isExecutableFile(atPath: "/usr/bin/chromedriver") else {
            throw WebDriverError(
                description: "chromedriver is not installed; scripts/setup.sh --browser installs chromium-driver")
        }
        var lastError: Error?
        for _ in 0..<5 {
            let port = Int.random(in: 20_000..<40_000)
            let p = Process()
            p.executableURL = URL(fileURLWithPath: "/usr/bin/chromedriver")
            p.arguments = ["--port=\(port)", "--log-level=SEVERE"]
            p.standardOutput = FileHandle.nullDevice
            p.standardError = FileHandle.nullDevice
            try p.run()
            for _ in 0..<50 {
                if (try? runProcess("/usr/bin/curl", ["-s", "http://127.0.0.1:\(port)/status"]))?.out.contains("ready")
                    == true
                {
                    self.port = port; self.process = p
                    return
                }
                usleep(100_000)
            }
            p.terminate()
            lastError = WebDriverError(description: "chromedriver did not start on port \(port)")
        }
        throw lastError!
    }
    deinit { process.terminate() }
}

/// One browser session.
final class BrowserSession: @unchecked Sendable {
    let base: String
    let id: String

    /// Starts headless Chromium; `microphone` feeds its fake capture device (played once).
    init(microphone: String? = nil) async throws {
        let driver = try ChromeDriver.shared.get()
        base = "http://127.0.0.1:\(driver.port)"
        var args = [
            "--headless=new", "--no-sandbox", "--disable-gpu", "--window-size=1400,1000", "--disable-dev-shm-usage",
            "--autoplay-policy=no-user-gesture-required", "--user-data-dir=" + (try Fixtures.temporaryDirectory()),
        ]
        if let microphone {
            args += [
                "--use-fake-device-for-media-stream", "--use-fake-ui-for-media-stream",
                "--use-file-for-fake-audio-capture=\(microphone)%noloop",
            ]
        }
        let caps: [String: Any] = [
            "capabilities": [
                "alwaysMatch": [
                    "goog:chromeOptions": ["binary": "/usr/bin/chromium", "args": args],
                    "goog:loggingPrefs": ["browser": "ALL"],
                ]
            ]
        ]
        let r = try await Self.send("POST", base + "/session", caps)
        guard let v = r as? [String: Any], let id = v["sessionId"] as? String else {
            throw WebDriverError(description: "no session: \(r)")
        }
        self.id = id
    }

    func close() async { _ = try? await Self.send("DELETE", base + "/session/\(id)", nil) }

    @discardableResult
    func command(_ method: String, _ path: String, _ body: [String: Any]? = [:]) async throws -> Any {
        try await Self.send(method, base + "/session/\(id)" + path, method == "GET" ? nil : body)
    }

    func open(_ url: String) async throws { try await command("POST", "/url", ["url": url]) }

    /// Runs `script` (a function body; `arguments` holds `args`) and returns its value.
    func run(_ script: String, _ args: [Any] = []) async throws -> Any {
        try await command("POST", "/execute/sync", ["script": script, "args": args])
    }

    /// Waits until `condition` (a JavaScript expression) is true, up to `seconds`.
    func wait(for condition: String, seconds: Double = 30) async throws {
        let end = Date().addingTimeInterval(seconds)
        while Date() < end {
            if try await run("return !!(\(condition));") as? Bool == true { return }
            try await Task.sleep(nanoseconds: 100_000_000)
        }
        let state = try await run(
            "return document.body.outerHTML.slice(0, 400) + ' … ' + document.querySelector('#error').textContent;")
        throw WebDriverError(description: "waited \(seconds) s for \(condition); page: \(state)")
    }

    func element(_ css: String) async throws -> String {
        let r = try await command("POST", "/element", ["using": "css selector", "value": css])
        guard let v = r as? [String: Any], let id = v.values.first as? String else {
            throw WebDriverError(description: "no element \(css): \(r)")
        }
        return id
    }

    func click(_ css: String) async throws { try await command("POST", "/element/\(try await element(css))/click") }

    func type(_ css: String, _ text: String) async throws {
        try await command("POST", "/element/\(try await element(css))/value", ["text": text])
    }

    /// A PNG screenshot of one element, decoded.
    func screenshot(_ css: String) async throws -> Image {
        let r = try await command("GET", "/element/\(try await element(css))/screenshot", nil)
        guard let b64 = r as? String, let data = Data(base64Encoded: b64) else {
            throw WebDriverError(description: "no screenshot of \(css)")
        }
        return try Image(png: data)
    }

    /// The console's messages since the last call (level and text).
    func consoleMessages() async throws -> [(level: String, message: String)] {
        let r = try await command("POST", "/se/log", ["type": "browser"])
        return (r as? [[String: Any]] ?? []).map { ($0["level"] as? String ?? "", $0["message"] as? String ?? "") }
    }

    /// One WebDriver command through curl (Foundation's URLSession on Linux fails on
    /// chromedriver's answers with "Failed writing header"), waited for off the cooperative pool.
    static func send(_ method: String, _ url: String, _ body: [String: Any]?) async throws -> Any {
        let payload = try body.map { try JSONSerialization.data(withJSONObject: $0) }
        let answer = try await http(
            url, method: method, body: payload.map { String(decoding: $0, as: UTF8.self) },
            headers: ["Content-Type: application/json"])
        let object = try JSONSerialization.jsonObject(with: answer.body, options: [.fragmentsAllowed])
        guard let value = (object as? [String: Any])?["value"] else { return NSNull() }
        if let v = value as? [String: Any], let error = v["error"] as? String {
            throw WebDriverError(description: "\(method) \(url): \(error): \(v["message"] ?? "")")
        }
        return value
    }
}

/// An RGBA image decoded from an 8-bit, non-interlaced PNG (what Chromium's screenshots are).
struct Image {
    let width: Int, height: Int
    /// Row-major RGBA bytes.
    let pixels: [UInt8]

    func rgb(_ x: Int, _ y: Int) -> (r: Int, g: Int, b: Int) {
        let o = (y * width + x) * 4
        return (Int(pixels[o]), Int(pixels[o + 1]), Int(pixels[o + 2]))
    }

    init(png: Data) throws {
        let bytes = [UInt8](png)
        guard bytes.count > 33, bytes[1] == 0x50, bytes[2] == 0x4E, bytes[3] == 0x47 else {
            throw WebDriverError(description: "not a PNG")
        }
        func u32(_ o: Int) -> Int {
            Int(bytes[o]) << 24 | Int(bytes[o + 1]) << 16 | Int(bytes[o + 2]) << 8 | Int(bytes[o + 3])
        }
        var at = 8, w = 0, h = 0, colorType = 0, idat = [UInt8]()
        while at + 8 <= bytes.count {
            let length = u32(at), type = String(decoding: bytes[(at + 4)..<(at + 8)], as: UTF8.self)
            let data = Array(bytes[(at + 8)..<(at + 8 + length)])
            if type == "IHDR" {
                w = u32(at + 8); h = u32(at + 12); colorType = Int(data[9])
                guard data[8] == 8, data[12] == 0, colorType == 6 || colorType == 2 else {
                    throw WebDriverError(description: "PNG: only 8-bit RGB(A), non-interlaced")
                }
            }
            if type == "IDAT" { idat += data }
            at += 12 + length
        }
        let channels = colorType == 6 ? 4 : 3, stride = w * channels
        var raw = [UInt8](repeating: 0, count: h * (stride + 1))
        var rawCount = uLongf(raw.count)
        let rc = raw.withUnsafeMutableBufferPointer { out in
            idat.withUnsafeBufferPointer { inp in
                uncompress(out.baseAddress, &rawCount, inp.baseAddress, uLong(idat.count))
            }
        }
        guard rc == Z_OK, Int(rawCount) == raw.count else {
            throw WebDriverError(description: "PNG: inflate failed (\(rc))")
        }
        var out = [UInt8](repeating: 0, count: h * stride), prev = [UInt8](repeating: 0, count: stride)
        for y in 0..<h {
            let filter = raw[y * (stride + 1)]
            var line = Array(raw[(y * (stride + 1) + 1)..<((y + 1) * (stride + 1))])
            for i in 0..<stride {
                let a = i >= channels ? Int(line[i - channels]) : 0, b = Int(prev[i])
                let c = i >= channels ? Int(prev[i - channels]) : 0
                let add: Int
                switch filter {
                case 1: add = a
                case 2: add = b
                case 3: add = (a + b) / 2
                case 4:
                    let p = a + b - c, pa = abs(p - a), pb = abs(p - b), pc = abs(p - c)
                    add = pa <= pb && pa <= pc ? a : (pb <= pc ? b : c)
                default: add = 0
                }
                line[i] = UInt8((Int(line[i]) + add) & 0xFF)
            }
            out.replaceSubrange((y * stride)..<((y + 1) * stride), with: line)
            prev = line
        }
        width = w; height = h
        if channels == 4 {
            pixels = out
        } else {
            var rgba = [UInt8](repeating: 255, count: w * h * 4)
            for i in 0..<(w * h) { for k in 0..<3 { rgba[i * 4 + k] = out[i * 3 + k] } }
            pixels = rgba
        }
    }
}
