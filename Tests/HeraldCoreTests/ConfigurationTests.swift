import Foundation
import HeraldProtocol
import Testing
@testable import HeraldCore

@Suite("Configuration")
struct ConfigurationTests {
    @Test func defaults() {
        let configuration = Configuration()
        #expect(configuration.port == 5000)
        #expect(configuration.workers == 0)
        #expect(configuration.maxLineBytes == 1_048_576)
        #expect(configuration.defaultRoom == "defaultRoom")
        #expect(Configuration.keys.count == Set(Configuration.keys).count, "no key listed twice")
    }

    @Test func environmentNames() {
        #expect(Configuration.environmentName(for: "port") == "HERALD_PORT")
        #expect(Configuration.environmentName(for: "maxLineBytes") == "HERALD_MAX_LINE_BYTES")
        #expect(Configuration.environmentName(for: "redisUrl") == "HERALD_REDIS_URL")
    }

    @Test func everyKeyCanBeSetFromItsOwnValue() throws {
        var configuration = Configuration()
        for (key, value) in Configuration().asJSON {
            try configuration.set(key, value, source: "test")
        }
        #expect(configuration == Configuration())
    }

    @Test func typesAndRangesAreChecked() {
        var configuration = Configuration()
        #expect(throws: ConfigurationError.self) { try configuration.set("port", .number(70_000), source: "t") }
        #expect(throws: ConfigurationError.self) { try configuration.set("maxLineBytes", .number(0), source: "t") }
        #expect(throws: ConfigurationError.self) { try configuration.set("simultaneousActions", .string("many"), source: "t") }
        #expect(throws: ConfigurationError.self) { try configuration.set("announceJoinLeave", .number(3), source: "t") }
        #expect(throws: ConfigurationError.self) { try configuration.set("logLevel", .string("loud"), source: "t") }
        #expect(throws: ConfigurationError.self) { try configuration.set("noSuchSetting", .number(1), source: "t") }
    }

    @Test func numbersAndBooleansMayComeAsText() throws {
        var configuration = Configuration()
        try configuration.set("port", .string("6000"), source: "t")
        try configuration.set("announceJoinLeave", .string("true"), source: "t")
        #expect(configuration.port == 6000)
        #expect(configuration.announceJoinLeave)
    }

    @Test func anErrorNamesTheSettingAndItsSource() {
        var configuration = Configuration()
        do {
            try configuration.set("port", .string("x"), source: "config/production.json")
            Issue.record("must fail")
        } catch {
            #expect(error.description.contains("config/production.json"))
            #expect(error.description.contains("port"))
        }
    }

    @Test func layersOverrideInOrder() throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("herald-config-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        try #"{"port": 1111, "maxLineBytes": 100, "defaultRoom": "a", "_comment": "ignored"}"#
            .write(to: directory.appendingPathComponent("default.json"), atomically: true, encoding: .utf8)
        try #"{"port": 2222, "defaultRoom": "b"}"#
            .write(to: directory.appendingPathComponent("production.json"), atomically: true, encoding: .utf8)
        let extra = directory.appendingPathComponent("extra.json")
        try #"{"port": 3333}"#.write(to: extra, atomically: true, encoding: .utf8)
        let loader = ConfigurationLoader(configDirectory: directory.path, environmentName: "production",
                                         configFile: extra.path, environment: ["HERALD_PORT": "4444", "HERALD_BIND": "::"],
                                         overrides: [("port", .number(5555))])
        let configuration = try loader.load()
        #expect(configuration.port == 5555)           // flags last
        #expect(configuration.bind == "::")           // environment
        #expect(configuration.defaultRoom == "b")     // environment file over default file
        #expect(configuration.maxLineBytes == 100)    // default file
    }

    @Test func aBrokenFileIsReportedWithItsPath() throws {
        let file = FileManager.default.temporaryDirectory.appendingPathComponent("herald-broken-\(UUID().uuidString).json")
        try #"{"port": "#.write(to: file, atomically: true, encoding: .utf8)
        defer { try? FileManager.default.removeItem(at: file) }
        do {
            _ = try ConfigurationLoader(configFile: file.path).load()
            Issue.record("must fail")
        } catch {
            #expect(error.description.contains(file.path))
        }
    }

    @Test func commandLineValuesAreJSONWhenTheyParse() {
        #expect(ConfigurationLoader.value(fromText: "65536") == .number(65_536))
        #expect(ConfigurationLoader.value(fromText: "true") == .bool(true))
        #expect(ConfigurationLoader.value(fromText: #""quoted""#) == .string("quoted"))
        #expect(ConfigurationLoader.value(fromText: "lobby") == .string("lobby"))
        #expect(ConfigurationLoader.value(fromText: "[1]") == .string("[1]"))
    }
}

@Suite("Connection limits")
struct ConnectionLimitTests {
    @Test func encodedSizeCountsEscapes() {
        #expect(Connection.encodedSize("") == 2)
        #expect(Connection.encodedSize("abc") == 5)
        #expect(Connection.encodedSize("\u{01}") == 8)  // "\u0001"
        #expect(Connection.encodedSize("\n\t\"\\") == 10)
        #expect(Connection.encodedSize("é") == 4)  // UTF-8 bytes, not escaped
    }

    @Test func newSettings() throws {
        let defaults = Configuration()
        #expect(defaults.lineTimeout == 30_000 && defaults.idleTimeout == 0 && defaults.outputStallTimeout == 10_000)
        #expect(defaults.maxStickyParamBytes == 8_388_608 && defaults.maxStickyParamValueBytes == 8_388_608)
        var configuration = Configuration()
        try configuration.set("lineTimeout", .number(0), source: "test")
        try configuration.set("idleTimeout", .string("60000"), source: "test")
        try configuration.set("maxStickyParamValueBytes", .number(4096), source: "test")
        #expect(configuration.lineTimeout == 0 && configuration.idleTimeout == 60_000 && configuration.maxStickyParamValueBytes == 4096)
        #expect(throws: ConfigurationError.self) { try configuration.set("outputStallTimeout", .number(-1), source: "test") }
        #expect(throws: ConfigurationError.self) { try configuration.set("maxStickyParamValueBytes", .number(0), source: "test") }
        for key in ["lineTimeout", "idleTimeout", "outputStallTimeout", "maxStickyParamValueBytes"] {
            #expect(Configuration.keys.contains(key))
            #expect(configuration.asJSON[key] != nil)
        }
    }
}
