import HeraldCore

enum SettingsList {
    static var text: String { Configuration.keys.joined(separator: ", ") }
}
