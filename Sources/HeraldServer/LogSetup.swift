import Glibc
import HeraldCore
import HeraldLoop
import HeraldProtocol

/// The log as the supervisor and the workers set it up, and SIGUSR1 (reopen the log).
enum LogSetup {
    /// The `logFormat` setting's format; JSON strings through the protocol's writer.
    static func format(_ configuration: Configuration) -> LogFormat {
        configuration.logFormat == "json" ? .json(writeString: { JSONWriter.writeString($0, to: &$1) }) : .text
    }

    static func configure(_ configuration: Configuration, fields: [(String, String)]) throws(SystemError) {
        try log.configure(level: LogLevel(name: configuration.logLevel) ?? .info, file: configuration.logFile,
                          fields: fields, format: format(configuration))
    }

    /// Blocks SIGUSR1 from the first moment (its default action ends the process): one
    /// that comes before the signal watcher is set up waits for it instead. Threads
    /// started later inherit the mask.
    static func holdReopenSignal() {
        var set = sigset_t()
        sigemptyset(&set)
        sigaddset(&set, SIGUSR1)
        sigprocmask(SIG_BLOCK, &set, nil)
    }
}
