{# Rows whose |column| exceeds max_abs, e.g. a reconciliation difference above one cent. #}
{% test absolute_value_at_most(model, column_name, max_abs) %}
select *
from {{ model }}
where abs({{ column_name }}) > {{ max_abs }}
{% endtest %}
