// The documents of the tomllib oracle test (TOMLTests.swift): every construct of TOML 1.0 that
// must be accepted, then documents that break one rule each. `\#r`, `\#t` and `\#u{..}` mark
// the carriage returns, tabs and control characters a document holds.
extension TOMLTests {
    static let validDocuments: [TOMLCase] = [
        TOMLCase("empty", ""),
        TOMLCase(
            "commentsOnly",
            #"""
            # a comment
               # indented


            """#),
        TOMLCase(
            "crlfLines",
            #"""
            a = 1\#r
            b = 'x' # c\#r

            """#),
        TOMLCase(
            "bareKeys",
            #"""
            key = 1
            bare_key = 2
            bare-key = 3
            1234 = 4
            -_- = 5
            ABC = 6

            """#),
        TOMLCase(
            "quotedKeys",
            #"""
            "127.0.0.1" = 1
            "character encoding" = 2
            "ʎǝʞ" = 3
            'key2' = 4
            'quoted "value"' = 5
            "" = 6

            """#),
        TOMLCase(
            "quotedKeyEscapes",
            #"""
            "a\tb\u00e9" = 1
            "\"" = 2

            """#),
        TOMLCase(
            "dottedKeys",
            #"""
            name = "Orange"
            physical.color = "orange"
            physical.shape = "round"
            site."google.com" = true

            """#),
        TOMLCase(
            "dottedKeysWhitespace",
            #"""
            fruit.name = 1
            fruit. color = 2
            fruit . flavor = 3

            """#),
        TOMLCase(
            "floatLikeKey",
            #"""
            3.14159 = "pi"

            """#),
        TOMLCase(
            "dottedKeysOutOfOrder",
            #"""
            apple.type = "fruit"
            orange.type = "fruit"
            apple.skin = "thin"
            orange.skin = "thick"

            """#),
        TOMLCase(
            "basicStrings",
            #"""
            str = "I'm a string. \"You can quote me\". Name\tJos\u00E9\nLocation\tSF."

            """#),
        TOMLCase(
            "allEscapes",
            #"""
            s = "\b\t\n\f\r\"\\\u0041\U0001F600\u00e9\U0010FFFF"

            """#),
        TOMLCase(
            "tabInStrings",
            #"""
            a = "x\#ty"
            b = 'x\#ty'
            c = """x\#ty"""

            """#),
        TOMLCase(
            "unicodeRaw",
            #"""
            a = "日本語 ☃ 😀"

            """#),
        TOMLCase(
            "multilineBasic",
            #"""
            s = """
            Roses are red
            Violets are blue"""

            """#),
        TOMLCase(
            "multilineBasicCRLF",
            #"""
            s = """\#r
            line1\#r
            line2\#r
            """\#r

            """#),
        TOMLCase(
            "lineEndingBackslash",
            #"""
            a = """
            The quick brown \


              fox jumps over \
                the lazy dog."""
            b = """\
                   The quick brown \
                   fox jumps over \
                   the lazy dog.\
                   """

            """#),
        TOMLCase(
            "lineEndingBackslashTrailingSpace",
            #"""
            a = """x \  \#t
               y"""

            """#),
        TOMLCase(
            "multilineQuotes",
            #"""
            a = """Here are two quotation marks: "". Simple enough."""
            b = """Here are three quotation marks: ""\"."""
            c = """Here are fifteen quotation marks: ""\"""\"""\"""\"""\"."""
            d = """"This," she said, "is just a pointless statement.""""

            """#),
        TOMLCase(
            "multilineQuotesAtEnd",
            #"""
            a = """x""""
            b = """x"""""
            c = """"""
            d = '''y''''
            e = '''y'''''

            """#),
        TOMLCase(
            "literalStrings",
            #"""
            winpath = 'C:\Users\nodejs\templates'
            winpath2 = '\\ServerX\admin$\system32\'
            quoted = 'Tom "Dubs" Preston-Werner'
            regex = '<\i\c*\s*>'

            """#),
        TOMLCase(
            "multilineLiteral",
            #"""
            regex2 = '''I [dw]on't need \d{2} apples'''
            lines = '''
            The first newline is
            trimmed in raw strings.
               All other whitespace
               is preserved.
            '''
            quot15 = '''Here are fifteen quotation marks: """""""""""""""'''
            apos15 = "Here are fifteen apostrophes: '''''''''''''''"
            str = ''''That,' she said, 'is still pointless.''''

            """#),
        TOMLCase(
            "multilineEmpty",
            #"""
            a = """"""
            b = ''''''
            c = """
            """

            """#),
        TOMLCase(
            "integers",
            #"""
            a = +99
            b = 42
            c = 0
            d = -17
            e = 1_000
            f = 5_349_221
            g = 53_49_221
            h = 1_2_3_4_5
            i = +0
            j = -0

            """#),
        TOMLCase(
            "integerLimits",
            #"""
            max = 9223372036854775807
            min = -9223372036854775808
            hexmax = 0x7FFFFFFFFFFFFFFF

            """#),
        TOMLCase(
            "prefixedIntegers",
            #"""
            hex1 = 0xDEADBEEF
            hex2 = 0xdeadbeef
            hex3 = 0xdead_beef
            oct1 = 0o01234567
            oct2 = 0o755
            bin1 = 0b11010110
            bin2 = 0b1_0
            z = 0x0
            lead = 0x00ff

            """#),
        TOMLCase(
            "floats",
            #"""
            a = +1.0
            b = 3.1415
            c = -0.01
            d = 5e+22
            e = 1e06
            f = -2E-2
            g = 6.626e-34
            h = 224_617.445_991_228
            i = 0.0
            j = -0.0
            k = +0.0
            l = 1e0
            m = 0e0
            n = 1_0.0_1e1_0

            """#),
        TOMLCase(
            "floatSpecials",
            #"""
            a = inf
            b = +inf
            c = -inf
            d = nan
            e = +nan
            f = -nan

            """#),
        TOMLCase(
            "floatPrecision",
            #"""
            a = 0.1
            b = 1.7976931348623157e308
            c = 5e-324
            d = 123456789.123456789

            """#),
        TOMLCase(
            "booleans",
            #"""
            t = true
            f = false

            """#),
        TOMLCase(
            "offsetDateTimes",
            #"""
            a = 1979-05-27T07:32:00Z
            b = 1979-05-27T00:32:00-07:00
            c = 1979-05-27T00:32:00.999999-07:00
            d = 1979-05-27 07:32:00Z
            e = 1979-05-27t07:32:00z
            f = 2000-01-01T00:00:00+23:59

            """#),
        TOMLCase(
            "localDateTimes",
            #"""
            a = 1979-05-27T07:32:00
            b = 1979-05-27T00:32:00.999999
            c = 1979-05-27 07:32:00.5

            """#),
        TOMLCase(
            "localDatesAndTimes",
            #"""
            d = 1979-05-27
            t1 = 07:32:00
            t2 = 00:32:00.999999
            t3 = 23:59:59.1234

            """#),
        TOMLCase(
            "dateThenComment",
            #"""
            d = 1979-05-27 # a date
            t = 07:32:00# a time

            """#),
        TOMLCase(
            "leapDay",
            #"""
            a = 2000-02-29
            b = 2024-02-29T12:00:00Z
            c = 1900-02-28

            """#),
        TOMLCase(
            "arrays",
            #"""
            integers = [ 1, 2, 3 ]
            colors = [ "red", "yellow", "green" ]
            nested_arrays_of_ints = [ [ 1, 2 ], [3, 4, 5] ]
            nested_mixed_array = [ [ 1, 2 ], ["a", "b", "c"] ]
            string_array = [ "all", 'strings', """are the same""", '''type''' ]
            numbers = [ 0.1, 0.2, 0.5, 1, 2, 5 ]
            contributors = [
              "Foo Bar <foo@example.com>",
              { name = "Baz Qux", email = "bazqux@example.com", url = "https://example.com/bazqux" }
            ]

            """#),
        TOMLCase(
            "multilineArrays",
            #"""
            integers2 = [
              1, 2, 3
            ]
            integers3 = [
              1,
              2, # this is ok
            ]
            empty = [ ]
            empty2 = [
            # only a comment
            ]
            nested = [[[]]]
            crlf = [\#r
            1,\#r
            2\#r
            ]

            """#),
        TOMLCase(
            "arrayOfDates",
            #"""
            a = [1979-05-27, 07:32:00, 1979-05-27T07:32:00Z]

            """#),
        TOMLCase(
            "tables",
            #"""
            [table-1]
            key1 = "some string"
            key2 = 123

            [table-2]
            key1 = "another string"
            key2 = 456

            """#),
        TOMLCase(
            "tableQuotedHeader",
            #"""
            [dog."tater.man"]
            type.name = "pug"
            [ j . "ʞ" . 'l' ]
            x = 1

            """#),
        TOMLCase(
            "implicitSuperTables",
            #"""
            [x.y.z.w]
            a = 1
            [x]
            b = 2

            """#),
        TOMLCase(
            "emptyTable",
            #"""
            [empty]
            [other]

            """#),
        TOMLCase(
            "tablesAnyOrder",
            #"""
            [fruit.apple]
            [animal]
            [fruit.orange]

            """#),
        TOMLCase(
            "dottedThenSubtableHeader",
            #"""
            [fruit]
            apple.color = "red"
            apple.taste.sweet = true
            [fruit.apple.texture]
            smooth = true

            """#),
        TOMLCase(
            "rootDottedThenHeaderBelow",
            #"""
            a.b = 1
            [a.c]
            d = 2

            """#),
        TOMLCase(
            "implicitThenDotted",
            #"""
            [a.b.c]
            z = 1
            [a]
            b.d = 2

            """#),
        TOMLCase(
            "inlineTables",
            #"""
            name = { first = "Tom", last = "Preston-Werner" }
            point = { x = 1, y = 2 }
            animal = { type.name = "pug" }
            empty = {}
            nested = { a = { b = { c = [1, {d = 2}] } } }

            """#),
        TOMLCase(
            "inlineTableMultilineValues",
            #"""
            a = { b = [
             1,
             2 ], c = """x
            y""" }

            """#),
        TOMLCase(
            "arrayOfTables",
            #"""
            [[products]]
            name = "Hammer"
            sku = 738594937

            [[products]]  # empty table within the array

            [[products]]
            name = "Nail"
            sku = 284758393
            color = "gray"

            """#),
        TOMLCase(
            "nestedArrayOfTables",
            #"""
            [[fruits]]
            name = "apple"
            [fruits.physical]
            color = "red"
            shape = "round"
            [[fruits.varieties]]
            name = "red delicious"
            [[fruits.varieties]]
            name = "granny smith"
            [[fruits]]
            name = "banana"
            [[fruits.varieties]]
            name = "plantain"

            """#),
        TOMLCase(
            "arrayOfTablesSubtableEachElement",
            #"""
            [[a]]
            [a.b]
            x = 1
            [[a]]
            [a.b]
            x = 2

            """#),
        TOMLCase(
            "whitespaceEverywhere",
            #"""
              a   =   1   # c
            \#t[ t ]\#t# c
            \#tb\#t=\#t"x"
             [[ arr ]]\#u{20}

            """#),
        TOMLCase(
            "commentAfterEverything",
            #"""
            a = [1, # one
            2] # two
            [t] # three
            [[u]] # four
            b = {x=1} # five

            """#),
        TOMLCase(
            "keysLikeValues",
            #"""
            true = 1
            false = 2
            inf = 3
            nan = 4
            1979-05-27 = 5

            """#),
        TOMLCase(
            "documentOrderAndDepth",
            #"""
            z = 1
            a = 2
            [m]
            q = [1, [2, [3, [4]]]]

            """#),
        TOMLCase(
            "plugin.conf",
            #"""
            version = 1
            root = "/var/lib/berth"
            [grpc]
            address = "/run/berth/berth.sock"
            [runtime_aliases]
            "io.containerd.runc.v2" = "io.containerd.runtime.v2.linux"
            [plugins."io.containerd.snapshotter.v1.overlayfs"]
            path = "libBerthSnapshotter.so"
            required = true
            [plugins."io.containerd.runtime.v2.linux".config]
            mode = "oci"

            """#),
        TOMLCase(
            "noTrailingNewline",
            #"""
            a = 1
            b = "x"
            """#),
        TOMLCase(
            "commentNoNewline",
            #"""
            a = 1 # end
            """#),
        TOMLCase(
            "mixedKeyQuoting",
            #"""
            "a" . 'b'.c = 1
            a."".d = 2
            [""]
            e = 3
            [a."b".x]

            """#),
        TOMLCase(
            "superTableAfterArrayOfTables",
            #"""
            [[a.b]]
            c = 1
            [a]
            d = 2

            """#),
        TOMLCase(
            "noSpaces",
            #"""
            a=1
            "b"='c'
            d={e=1,f=[2,3]}

            """#),
        TOMLCase(
            "escapedNulAndControls",
            #"""
            a = "\u0000\u001f\u007f"

            """#),
        TOMLCase(
            "commentWithTab",
            #"""
            #\#ttab\#ta = 1

            """#),
        TOMLCase(
            "arrayCommentBeforeClose",
            #"""
            a = [ # c
            ]
            b = [
              1, # c
              2 # d
              , 3 # e
            ]

            """#),
        TOMLCase(
            "exponentUnderscoresAndCase",
            #"""
            a = 1e+1_0
            b = 0.1e-1_0
            c = 1E+5
            d = 1e-05
            e = 0.0e-0

            """#),
        TOMLCase(
            "offsetWithFraction",
            #"""
            a = 1979-05-27T07:32:00.5+01:30
            b = 1979-05-27\#u{20}
            c = 1979-05-27 07:32:00\#u{20}

            """#),
        TOMLCase(
            "inlineSameKeyAsParent",
            #"""
            a = {a = 1}
            a2.b.c = {d = 1}
            a2.b.e = 2

            """#),
        TOMLCase(
            "nonAsciiInComment",
            #"""
            # ünïcödé ☃ comment
            a = 1

            """#),
    ]

    /// Each refused by tomllib too; the position is where our error points.
    static let invalidDocuments: [TOMLCase] = [
        TOMLCase(
            "bareCarriageReturn",
            #"""
            a = 1\#rb = 2

            """#, refusedAt: (1, 6)),
        TOMLCase(
            "controlInComment",
            #"""
            # bell \#u{7} here
            a = 1

            """#, refusedAt: (1, 8)),
        TOMLCase(
            "delInComment",
            #"""
            # del \#u{7F}

            """#, refusedAt: (1, 7)),
        TOMLCase(
            "controlInString",
            #"""
            a = "x\#u{1}y"

            """#, refusedAt: (1, 7)),
        TOMLCase(
            "controlInLiteral",
            #"""
            a = 'x\#u{1F}y'

            """#, refusedAt: (1, 7)),
        TOMLCase(
            "delInString",
            #"""
            a = "x\#u{7F}"

            """#, refusedAt: (1, 7)),
        TOMLCase(
            "controlInMultiline",
            #"""
            a = """x\#u{0}y"""

            """#, refusedAt: (1, 9)),
        TOMLCase(
            "bareCRInMultiline",
            #"""
            a = '''x\#ry'''

            """#, refusedAt: (1, 9)),
        TOMLCase(
            "newlineInBasicString",
            #"""
            a = "x
            y"

            """#, refusedAt: (1, 7)),
        TOMLCase(
            "newlineInLiteralString",
            #"""
            a = 'x
            y'

            """#, refusedAt: (1, 7)),
        TOMLCase(
            "unterminatedString",
            #"""
            a = "abc

            """#, refusedAt: (1, 9)),
        TOMLCase(
            "unterminatedMultiline",
            #"""
            a = """abc

            """#, refusedAt: (2, 1)),
        TOMLCase(
            "invalidEscape",
            #"""
            a = "\q"

            """#, refusedAt: (1, 6)),
        TOMLCase(
            "escapeE11",
            #"""
            a = "\e"

            """#, refusedAt: (1, 6)),
        TOMLCase(
            "escapeX11",
            #"""
            a = "\x41"

            """#, refusedAt: (1, 6)),
        TOMLCase(
            "shortUnicodeEscape",
            #"""
            a = "\u00G1"

            """#, refusedAt: (1, 6)),
        TOMLCase(
            "surrogateEscape",
            #"""
            a = "\uD800"

            """#, refusedAt: (1, 6)),
        TOMLCase(
            "beyondUnicodeEscape",
            #"""
            a = "\U00110000"

            """#, refusedAt: (1, 6)),
        TOMLCase(
            "escapeInLiteral",
            #"""
            a = 'x' \n

            """#, refusedAt: (1, 9)),
        TOMLCase(
            "backslashSpaceNotAtLineEnd",
            #"""
            a = """x\ y"""

            """#, refusedAt: (1, 9)),
        TOMLCase(
            "sixQuotesInMultiline",
            #"""
            a = """x""""""

            """#, refusedAt: (1, 9)),
        TOMLCase(
            "multilineKey",
            #"""
            """k""" = 1

            """#, refusedAt: (1, 3)),
        TOMLCase(
            "noValue",
            #"""
            a =

            """#, refusedAt: (1, 4)),
        TOMLCase(
            "noEquals",
            #"""
            a 1

            """#, refusedAt: (1, 3)),
        TOMLCase(
            "noKey",
            #"""
            = 1

            """#, refusedAt: (1, 1)),
        TOMLCase(
            "emptyBareKey",
            #"""
            a. = 1

            """#, refusedAt: (1, 4)),
        TOMLCase(
            "invalidBareKeyChar",
            #"""
            a!b = 1

            """#, refusedAt: (1, 2)),
        TOMLCase(
            "twoKeyValuesOnOneLine",
            #"""
            a = 1 b = 2

            """#, refusedAt: (1, 7)),
        TOMLCase(
            "duplicateKey",
            #"""
            a = 1
            a = 2

            """#, refusedAt: (2, 1)),
        TOMLCase(
            "duplicateKeyQuotedSpelling",
            #"""
            spelling = 1
            "spelling" = 2

            """#, refusedAt: (2, 1)),
        TOMLCase(
            "duplicateDottedKey",
            #"""
            a.b = 1
            a.b = 2

            """#, refusedAt: (2, 1)),
        TOMLCase(
            "dottedKeyOverValue",
            #"""
            a = 1
            a.b = 2

            """#, refusedAt: (2, 1)),
        TOMLCase(
            "tableDefinedTwice",
            #"""
            [a]
            b = 1
            [a]
            c = 2

            """#, refusedAt: (3, 1)),
        TOMLCase(
            "tableDefinedTwiceViaSuper",
            #"""
            [a]
            b = 1
            [a.b]
            c = 2

            """#, refusedAt: (3, 1)),
        TOMLCase(
            "headerOverDottedTable",
            #"""
            [fruit]
            apple.color = "red"
            [fruit.apple]

            """#, refusedAt: (3, 1)),
        TOMLCase(
            "headerOverDeeperDottedTable",
            #"""
            [fruit]
            apple.taste.sweet = true
            [fruit.apple.taste]

            """#, refusedAt: (3, 1)),
        TOMLCase(
            "rootDottedThenHeader",
            #"""
            a.b = 1
            [a]

            """#, refusedAt: (2, 1)),
        TOMLCase(
            "dottedIntoHeaderTable",
            #"""
            [a.b.c]
            z = 9
            [a]
            b.c.t = 1

            """#, refusedAt: (4, 1)),
        TOMLCase(
            "dottedIntoDeeperHeaderTable",
            #"""
            [a.b.c.d]
            z = 9
            [a]
            b.c.d.k.t = 1

            """#, refusedAt: (4, 1)),
        TOMLCase(
            "implicitMadeDottedThenHeader",
            #"""
            [a.b.c]
            [a]
            b.d = 1
            [a.b]

            """#, refusedAt: (4, 1)),
        TOMLCase(
            "headerOverInlineTable",
            #"""
            a = {b = 1}
            [a]

            """#, refusedAt: (2, 1)),
        TOMLCase(
            "subheaderOfInlineTable",
            #"""
            a = {b = 1}
            [a.c]

            """#, refusedAt: (2, 1)),
        TOMLCase(
            "dottedKeyIntoInlineTable",
            #"""
            a = {b = 1}
            a.c = 2

            """#, refusedAt: (2, 1)),
        TOMLCase(
            "inlineTableTrailingComma",
            #"""
            a = {b = 1,}

            """#, refusedAt: (1, 12)),
        TOMLCase(
            "inlineTableNewline",
            #"""
            a = {b = 1,
            c = 2}

            """#, refusedAt: (1, 12)),
        TOMLCase(
            "inlineTableDuplicate",
            #"""
            a = {b = 1, b = 2}

            """#, refusedAt: (1, 13)),
        TOMLCase(
            "inlineTableDottedConflict",
            #"""
            a = {b.c = 1, b = 2}

            """#, refusedAt: (1, 15)),
        TOMLCase(
            "inlineTableNestedFrozen",
            #"""
            a = {b = {c = 1}, b.d = 2}

            """#, refusedAt: (1, 19)),
        TOMLCase(
            "inlineTableMissingComma",
            #"""
            a = {b = 1 c = 2}

            """#, refusedAt: (1, 12)),
        TOMLCase(
            "inlineTableUnclosed",
            #"""
            a = {b = 1

            """#, refusedAt: (1, 11)),
        TOMLCase(
            "arrayOfTablesOverStaticArray",
            #"""
            a = []
            [[a]]

            """#, refusedAt: (2, 1)),
        TOMLCase(
            "arrayOfTablesOverTable",
            #"""
            [a]
            [[a]]

            """#, refusedAt: (2, 1)),
        TOMLCase(
            "tableOverArrayOfTables",
            #"""
            [[a]]
            [a]

            """#, refusedAt: (2, 1)),
        TOMLCase(
            "subtableOfStaticArray",
            #"""
            a = [{b = 1}]
            [a.c]

            """#, refusedAt: (2, 1)),
        TOMLCase(
            "dottedIntoArrayOfTables",
            #"""
            [[t.arr]]
            [t]
            arr.x = 1

            """#, refusedAt: (3, 1)),
        TOMLCase(
            "arrayMissingComma",
            #"""
            a = [1 2]

            """#, refusedAt: (1, 8)),
        TOMLCase(
            "arrayLeadingComma",
            #"""
            a = [,1]

            """#, refusedAt: (1, 6)),
        TOMLCase(
            "arrayDoubleComma",
            #"""
            a = [1,,2]

            """#, refusedAt: (1, 8)),
        TOMLCase(
            "arrayUnclosed",
            #"""
            a = [1, 2

            """#, refusedAt: (2, 1)),
        TOMLCase(
            "headerUnclosed",
            #"""
            [a
            b = 1

            """#, refusedAt: (1, 3)),
        TOMLCase(
            "headerEmpty",
            #"""
            []

            """#, refusedAt: (1, 2)),
        TOMLCase(
            "arrayHeaderSpaced",
            #"""
            [[a] ]

            """#, refusedAt: (1, 5)),
        TOMLCase(
            "headerTrailingText",
            #"""
            [a] b = 1

            """#, refusedAt: (1, 5)),
        TOMLCase(
            "leadingZero",
            #"""
            a = 01

            """#, refusedAt: (1, 5)),
        TOMLCase(
            "leadingZeroNegative",
            #"""
            a = -01

            """#, refusedAt: (1, 5)),
        TOMLCase(
            "leadingZeroFloat",
            #"""
            a = 03.14

            """#, refusedAt: (1, 5)),
        TOMLCase(
            "doubleUnderscore",
            #"""
            a = 1__000

            """#, refusedAt: (1, 5)),
        TOMLCase(
            "leadingUnderscore",
            #"""
            a = _1

            """#, refusedAt: (1, 5)),
        TOMLCase(
            "trailingUnderscore",
            #"""
            a = 1_

            """#, refusedAt: (1, 5)),
        TOMLCase(
            "underscoreAfterPrefix",
            #"""
            a = 0x_1

            """#, refusedAt: (1, 5)),
        TOMLCase(
            "signedHex",
            #"""
            a = +0xFF

            """#, refusedAt: (1, 5)),
        TOMLCase(
            "signedOctal",
            #"""
            a = -0o7

            """#, refusedAt: (1, 5)),
        TOMLCase(
            "uppercasePrefix",
            #"""
            a = 0XFF

            """#, refusedAt: (1, 5)),
        TOMLCase(
            "badOctalDigit",
            #"""
            a = 0o8

            """#, refusedAt: (1, 5)),
        TOMLCase(
            "badBinaryDigit",
            #"""
            a = 0b102

            """#, refusedAt: (1, 5)),
        TOMLCase(
            "emptyHex",
            #"""
            a = 0x

            """#, refusedAt: (1, 5)),
        TOMLCase(
            "doubleSign",
            #"""
            a = +-1

            """#, refusedAt: (1, 5)),
        TOMLCase(
            "floatNoFraction",
            #"""
            a = 1.

            """#, refusedAt: (1, 5)),
        TOMLCase(
            "floatNoInteger",
            #"""
            a = .5

            """#, refusedAt: (1, 5)),
        TOMLCase(
            "floatDotExponent",
            #"""
            a = 1.e5

            """#, refusedAt: (1, 5)),
        TOMLCase(
            "floatEmptyExponent",
            #"""
            a = 1e

            """#, refusedAt: (1, 5)),
        TOMLCase(
            "floatUnderscoreBeforeDot",
            #"""
            a = 1_.5

            """#, refusedAt: (1, 5)),
        TOMLCase(
            "floatUnderscoreAfterDot",
            #"""
            a = 1._5

            """#, refusedAt: (1, 5)),
        TOMLCase(
            "floatUnderscoreInExponentStart",
            #"""
            a = 1e_5

            """#, refusedAt: (1, 5)),
        TOMLCase(
            "floatTwoDots",
            #"""
            a = 1.2.3

            """#, refusedAt: (1, 5)),
        TOMLCase(
            "capitalInf",
            #"""
            a = Inf

            """#, refusedAt: (1, 5)),
        TOMLCase(
            "capitalNan",
            #"""
            a = NaN

            """#, refusedAt: (1, 5)),
        TOMLCase(
            "infinity",
            #"""
            a = infinity

            """#, refusedAt: (1, 5)),
        TOMLCase(
            "capitalTrue",
            #"""
            a = True

            """#, refusedAt: (1, 5)),
        TOMLCase(
            "trueWithSuffix",
            #"""
            a = truex

            """#, refusedAt: (1, 5)),
        TOMLCase(
            "badMonth",
            #"""
            a = 1979-13-27

            """#, refusedAt: (1, 10)),
        TOMLCase(
            "badDay",
            #"""
            a = 1979-04-31

            """#, refusedAt: (1, 13)),
        TOMLCase(
            "notLeapDay",
            #"""
            a = 2023-02-29

            """#, refusedAt: (1, 13)),
        TOMLCase(
            "centuryNotLeap",
            #"""
            a = 1900-02-29

            """#, refusedAt: (1, 13)),
        TOMLCase(
            "badHour",
            #"""
            a = 24:00:00

            """#, refusedAt: (1, 5)),
        TOMLCase(
            "badMinute",
            #"""
            a = 12:60:00

            """#, refusedAt: (1, 8)),
        TOMLCase(
            "timeWithoutSeconds",
            #"""
            a = 12:30

            """#, refusedAt: (1, 10)),
        TOMLCase(
            "dateTimeWithoutSeconds",
            #"""
            a = 1979-05-27T07:32Z

            """#, refusedAt: (1, 21)),
        TOMLCase(
            "shortYear",
            #"""
            a = 979-05-27

            """#, refusedAt: (1, 5)),
        TOMLCase(
            "singleDigitMonth",
            #"""
            a = 1979-5-27

            """#, refusedAt: (1, 10)),
        TOMLCase(
            "fractionWithoutDigits",
            #"""
            a = 07:32:00.

            """#, refusedAt: (1, 14)),
        TOMLCase(
            "badOffset",
            #"""
            a = 1979-05-27T07:32:00+7:00

            """#, refusedAt: (1, 25)),
        TOMLCase(
            "offsetHourRange",
            #"""
            a = 1979-05-27T07:32:00+24:00

            """#, refusedAt: (1, 25)),
        TOMLCase(
            "offsetWithoutColon",
            #"""
            a = 1979-05-27T07:32:00+0700

            """#, refusedAt: (1, 27)),
        TOMLCase(
            "offsetOnLocalTime",
            #"""
            a = 07:32:00Z

            """#, refusedAt: (1, 13)),
        TOMLCase(
            "dateTrailingT",
            #"""
            a = 1979-05-27T

            """#, refusedAt: (1, 16)),
        TOMLCase(
            "valueOnNextLine",
            #"""
            a =
            1

            """#, refusedAt: (1, 4)),
        TOMLCase(
            "apostropheInLiteral",
            #"""
            a = 'it''s'

            """#, refusedAt: (1, 9)),
        TOMLCase(
            "underscoreAfterInf",
            #"""
            a = inf_

            """#, refusedAt: (1, 5)),
        TOMLCase(
            "spaceBeforeZ",
            #"""
            a = 1979-05-27T07:32:00 Z

            """#, refusedAt: (1, 25)),
        TOMLCase(
            "nonAsciiBareKey",
            #"""
            é = 1

            """#, refusedAt: (1, 1)),
        TOMLCase(
            "keyAtEnd",
            #"""
            a
            """#, refusedAt: (1, 2)),
        TOMLCase(
            "backslashAtEnd",
            #"""
            a = "\
            """#, refusedAt: (1, 6)),
        TOMLCase(
            "literalAtEnd",
            #"""
            a = 'abc
            """#, refusedAt: (1, 9)),
        TOMLCase(
            "multilineBackslashAtEnd",
            #"""
            a = """\
            """#, refusedAt: (1, 8)),
        TOMLCase(
            "singleDigitHour",
            #"""
            a = 7:32:00

            """#, refusedAt: (1, 6)),
        TOMLCase(
            "headerReopenedAfterSubtable",
            #"""
            [a]
            [a.b]
            [a]

            """#, refusedAt: (3, 1)),
        TOMLCase(
            "arrayOfTablesUnderInlineArray",
            #"""
            a = [{}]
            [[a]]

            """#, refusedAt: (2, 1)),
        TOMLCase(
            "equalsInHeader",
            #"""
            [a = 1]

            """#, refusedAt: (1, 4)),
        TOMLCase(
            "literalWithNewlineKey",
            #"""
            'a
            b' = 1

            """#, refusedAt: (1, 3)),
        TOMLCase(
            "bareWordValue",
            #"""
            a = hello

            """#, refusedAt: (1, 5)),
    ]
}
