"""Managed compute beyond EC2: SageMaker, AppStream, Deadline Cloud, WorkSpaces, CodeBuild, Lambda
managed instances. A registry of families (``registry``), each with a sweep, an optional describe
and an optional remediation; ``guard`` plugs them into the reactive guard."""
