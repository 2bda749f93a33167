"""Library errors name settings as fields, the command line as flags: one message, two audiences."""

from dmc.errors import InvalidInputError, NamedSettingsError, SettingError


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


def test_a_switch_turned_off_and_a_setting_whose_flag_is_named_otherwise():
    error = SettingError("too small", "train with {auxiliary=False}, or compile it with {num_classes} 10")
    assert str(error) == "too small (hint: train with auxiliary=False, or compile it with num_classes 10)"
    assert error.cli_text() == "too small (hint: train with --no-auxiliary, or compile it with --num-classes 10)"


def test_a_failure_that_other_settings_avoid_exits_1_and_names_them_for_both_audiences():
    error = NamedSettingsError("the run diverged", "lower the learning rate ({lr})")
    assert error.exit_code == 1 and not isinstance(error, InvalidInputError)
    assert str(error) == "the run diverged (hint: lower the learning rate (lr))"
    assert error.cli_text() == "the run diverged (hint: lower the learning rate (--lr))"


def test_other_errors_read_the_same_on_the_command_line():
    error = InvalidInputError("{epochs} is quoted as it is", "no setting named")
    assert error.cli_text() == str(error) == "{epochs} is quoted as it is (hint: no setting named)"


def test_the_cli_prints_flags(cli):
    result = cli("compile", "FairNAS_A", "--channels", "8", "-o", "x.pt")
    assert result.exit_code == 2
    assert "--channels is not a setting of chain networks (hint: chain networks are sized by --width)" in result.stderr
