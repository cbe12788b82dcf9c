public enum Console { public static func main(_ arguments: [String]) -> Int32 { 0 } }
