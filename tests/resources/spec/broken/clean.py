"""Present so that only the retry value of `clean` is wrong."""


def transform(data: dict) -> dict:
    return data
