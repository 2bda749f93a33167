"""Library errors name settings as fields, the command line as flags: one message, two audiences."""

from dmc.errors import InvalidInputError, SettingError


def test_a_setting_error_names_fields_in_python_and_flags_on_the_command_line():
    error = SettingError("a chain network: {channels} is not a setting of chain networks",
                         "chain networks are sized by {width}; {batch_size} is another matter")
    assert isinstance(error, InvalidInputError) and error.exit_code == 2
    assert str(error) == ("a chain network: channels is not a setting of chain networks (hint: chain networks are "
                          "sized by width; batch_size is another matter)")
    assert error.cli_text() == ("a chain network: --channels is not a setting of chain networks (hint: chain "
                                "networks are sized by --width; --batch-size is another matter)")


def test_braces_a_message_quotes_stay_as_they_are():
    error = SettingError("{epochs} must be positive, got {'a': 1} from {Path}")
    assert str(error) == "epochs must be positive, got {'a': 1} from {Path}"
    assert error.cli_text() == "--epochs must be positive, got {'a': 1} from {Path}"


def test_the_cli_prints_flags(cli):
    result = cli("compile", "FairNAS_A", "--channels", "8", "-o", "x.pt")
    assert result.exit_code == 2
    assert "--channels is not a setting of chain networks (hint: chain networks are sized by --width)" in result.stderr
