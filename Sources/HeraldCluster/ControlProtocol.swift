/// The supervisor–worker channel (the control socketpair): the worker reports JSON lines
/// (`WorkerReport`, each with `protocol`), the supervisor sends command lines, with
/// descriptors attached where a command takes some (SCM_RIGHTS):
///   `herald-control <version>`  first, always
///   `adopt`                     + 1 descriptor: a handoff channel to adopt connections from
///   `handover <n>`              + n descriptors: hand every connection over these channels, then exit
/// Each side checks the other's version: an upgraded supervisor and an older worker (or
/// the other way round) refuse each other with a log line instead of misbehaving.
public enum ControlProtocol {
    public static let version = 1
    static let hello = "herald-control"
}
