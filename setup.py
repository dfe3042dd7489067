"""Package layout: libs/flywheel is the `flywheel` package; services/ is `flywheel.services`."""

from setuptools import find_packages, setup

_LIBS = ["flywheel"] + [f"flywheel.{p}" for p in find_packages("libs/flywheel")]
_SERVICES = ["flywheel.services"] + [f"flywheel.services.{p}" for p in find_packages("services")]

setup(
    packages=_LIBS + _SERVICES,
    package_dir={"flywheel": "libs/flywheel", "flywheel.services": "services"},
    package_data={"": ["*.yaml", "*.yml", "*.json", "*.txt", "*.html", "*.j2", "*.ini", "*.mako", "*.proto", "*.xml", "*.properties", "*.jsonl", "*.css", "*.js",
                        "templates/*", "templates/**/*", "static/*", "static/**/*", "corpus/*"]},
    include_package_data=True,
)
